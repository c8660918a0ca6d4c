"""libiscsi's SCSI/iSCSI conformance suite against a file LUN of the portal, scored per
unique test with ../shared/tools/testcu-score. Fails on any regression of the score.

The whole suite runs against a fixed disk, the default LUN. Tests that need another kind
of LUN skip there, and run again, alone, against a target whose LUN is of that kind: a
removable medium (INQUIRY RMB), a read-only LUN, one with 4 KiB physical blocks (the
five tests written for 2 or more logical blocks per physical block; GET LBA STATUS's
UnmapSingle wants one, so the default LUN keeps 512), and a LUN reached by two sessions
at once (MultipathIO: two URLs, two I_T nexuses). A whole run on the removable LUN
scores the same, but an eject test failing half-way would leave the medium out and fail
every test after it, and the fixed disk is what most deployments serve. The runs are
merged per test: a failure in any is a failure, a pass in any a pass (a skip only says
that run could not try it).

The failure left cannot pass: iSCSIDataSnInvalid wants each of its four writes with a
broken DataSN to fail, and libiscsi's own helper prints "[FAILED] WRITE10 command failed"
for every write that does, which the scorer counts (CUnit counts the test passed).
"""

import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from ..peers import in_ci, require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:conformance"
LIBISCSI_INITIATORS = [  # the names iscsi-test-cu logs in with
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2",
]
MULTIPATH_TESTS = ("Simple", "CompareAndWrite", "CompareAndWriteAsync")


class SuiteRun(NamedTuple):
    """Suites that skip on the default LUN, run against a target of their own."""

    kind: str  # names the target and the log
    options: dict[str, object]  # of its LUN
    suites: str
    witness: str  # a test that must pass there, or the run did not do its job
    paths: int = 1  # sessions to the LUN (MultipathIO logs in once per URL given)


SPECIAL_RUNS = (
    SuiteRun(
        "removable",
        {"removable": True},
        "SCSI.PreventAllow,SCSI.StartStopUnit,SCSI.NoMedia",
        "PreventAllow.Eject",
    ),
    SuiteRun("read-only", {"read_only": True}, "SCSI.ReadOnly", "ReadOnly.ReadOnlySBC"),
    SuiteRun(
        "physical-4k",
        {"physical_block_size": 4096},
        "SCSI.CompareAndWrite,SCSI.WriteSame10,SCSI.WriteSame16",
        "WriteSame16.UnmapUnaligned",
    ),
    # Not MultipathIO.Reset: it wants a unit attention for the nexus that sent the LUN
    # RESET as well, PreventAllow.LUNReset, .WarmReset, .ColdReset and Reserve6.LUNReset
    # want none there; like tgtd, only the other nexuses get one.
    SuiteRun(
        "multipath",
        {},
        ",".join(f"SCSI.MultipathIO.{test}" for test in MULTIPATH_TESTS),
        "MultipathIO.CompareAndWriteAsync",
        paths=2,
    ),
)
SCORER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "testcu-score"
MIN_PASS = 217
MAX_FAIL = 1
EXPECTED_FAILURES = {"iSCSIdatasn.iSCSIDataSnInvalid"}
_RANK = {"skip": 0, "pass": 1, "fail": 2}  # merging runs: the highest outcome stands


def outcomes(log: Path) -> dict[str, str]:
    """Each unique Suite.Test of the log and its outcome, as the scorer judges it."""
    found: dict[str, str] = {}
    for kind in _RANK:
        done = subprocess.run(
            [str(SCORER), str(log), "--list", kind],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        found |= {name: kind for name in done.stdout.split() if "=" not in name}
    return found


def run_suite(program: str, urls: list[str], log: Path, *options: str) -> dict[str, str]:
    with log.open("wb") as out:
        subprocess.run(
            [program, "-d", "-v", *options, *urls],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    return outcomes(log)


def test_iscsi_test_cu_conformance(our_server: OurServer, tmp_path: Path) -> None:
    program = require("iscsi-test-cu")
    if not SCORER.exists():
        message = f"{SCORER} is missing"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    port = our_server.enable_portal()
    size = 64 << 20
    luns = {TARGET: {"path": str(tmp_path / "lun0.img")}}
    for run in SPECIAL_RUNS:
        image = tmp_path / f"{run.kind}.img"
        image.write_bytes(bytes(size))  # a read-only LUN cannot be created by the server
        luns[f"{TARGET}-{run.kind}"] = run.options | {"path": str(image)}
    targets = [
        {
            "name": name,
            "luns": [{"lun": 0, "size": size} | lun],
            "allowed_initiators": LIBISCSI_INITIATORS,
        }
        for name, lun in luns.items()
    ]
    our_server.configure(targets=targets)
    our_server.start()
    url = f"iscsi://127.0.0.1:{port}/{{}}/0"
    merged = run_suite(program, [url.format(TARGET)], tmp_path / "iscsi-test-cu.log")
    for run in SPECIAL_RUNS:
        log = tmp_path / f"iscsi-test-cu-{run.kind}.log"
        urls = [url.format(f"{TARGET}-{run.kind}")] * run.paths
        found = run_suite(program, urls, log, "-t", run.suites)
        assert found.get(run.witness) == "pass", f"{run.witness} on the {run.kind} LUN: {found}"
        for name, outcome in found.items():
            if name not in merged or _RANK[outcome] > _RANK[merged[name]]:
                merged[name] = outcome
    counts = {kind: sum(1 for o in merged.values() if o == kind) for kind in _RANK}
    passed, skipped, failed = counts["pass"], counts["skip"], counts["fail"]
    summary = f"tests={len(merged)} pass={passed} skip={skipped} fail={failed}"
    failures = {name for name, outcome in merged.items() if outcome == "fail"}
    assert failures <= EXPECTED_FAILURES, f"new failures: {failures - EXPECTED_FAILURES}"
    assert failed <= MAX_FAIL and passed >= MIN_PASS, summary
    assert "Traceback" not in our_server.log()
