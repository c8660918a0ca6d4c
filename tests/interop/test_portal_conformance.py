"""libiscsi's SCSI/iSCSI conformance suite against a file LUN of the portal, scored per
unique test by CUnit's own verdict (tests/cunit_verdicts.py). Any failure fails.

The whole suite runs against a fixed disk, the default LUN, with its URL given twice so
the MultipathIO tests run over two sessions (two I_T nexuses). Tests that need another
kind of LUN skip there, and run again, alone, against a target whose LUN is of that
kind: a removable medium (INQUIRY RMB), a read-only LUN, one with 4 KiB physical blocks
(the five tests written for 2 or more logical blocks per physical block; GET LBA
STATUS's UnmapSingle wants one, so the default LUN keeps 512). A whole run on the
removable LUN scores the same, but an eject test failing half-way would leave the
medium out and fail every test after it, and the fixed disk is what most deployments
serve. The runs are merged per test: a failure in any is a failure, a pass in any a
pass (a skip only says that run could not try it).

The bracketed "[FAILED]" lines libiscsi logs are single commands a test may expect to
fail (iSCSIDataSnInvalid logs one for each write it breaks): CUnit's verdict decides.
"""

import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from ..cunit_verdicts import Outcome, score, tally
from ..peers import require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:conformance"
LIBISCSI_INITIATORS = [  # the names iscsi-test-cu logs in with
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2",
]


class SuiteRun(NamedTuple):
    """Suites that skip on the default LUN, run against a target of their own."""

    kind: str  # names the target and the log
    options: dict[str, object]  # of its LUN
    suites: str
    witness: str  # a test that must pass there, or the run did not do its job


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
)
MIN_PASS = 219
MULTIPATH = "MultipathIO.Reset"  # runs only with two URLs: a witness that it had them
_RANK = {Outcome.SKIP: 0, Outcome.PASS: 1, Outcome.FAIL: 2}  # merging runs: highest stands


def run_suite(program: str, urls: list[str], log: Path, *options: str) -> dict[str, Outcome]:
    with log.open("wb") as out:
        subprocess.run(
            [program, "-d", "-v", *options, *urls],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    return score(log.read_text(errors="replace"))


def test_iscsi_test_cu_conformance(our_server: OurServer, tmp_path: Path) -> None:
    program = require("iscsi-test-cu")
    port = our_server.enable_portal()
    size = 64 << 20
    luns: dict[str, dict[str, object]] = {TARGET: {"path": str(tmp_path / "lun0.img")}}
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
    log = tmp_path / "iscsi-test-cu.log"
    merged = run_suite(program, [url.format(TARGET)] * 2, log)
    assert merged.get(MULTIPATH) == Outcome.PASS, f"{MULTIPATH}: see {log}"
    for run in SPECIAL_RUNS:
        log = tmp_path / f"iscsi-test-cu-{run.kind}.log"
        found = run_suite(program, [url.format(f"{TARGET}-{run.kind}")], log, "-t", run.suites)
        assert found.get(run.witness) == Outcome.PASS, f"{run.witness} on the {run.kind} LUN"
        for name, outcome in found.items():
            if name not in merged or _RANK[outcome] > _RANK[merged[name]]:
                merged[name] = outcome
    counts = tally(merged)
    passed, skipped, failed = counts[Outcome.PASS], counts[Outcome.SKIP], counts[Outcome.FAIL]
    summary = f"tests={len(merged)} pass={passed} skip={skipped} fail={failed}"
    print(summary)  # the score, for `pytest -s`
    failures = sorted(name for name, outcome in merged.items() if outcome == Outcome.FAIL)
    assert not failures, f"{summary}; failed: {failures}; logs in {tmp_path}"
    assert passed >= MIN_PASS, summary
    assert "Traceback" not in our_server.log()
