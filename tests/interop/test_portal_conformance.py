"""libiscsi's SCSI/iSCSI conformance suite against a file LUN of the portal, scored per
unique test with ../shared/tools/testcu-score. Fails on any regression of the score.

The whole suite runs against a fixed disk, the default LUN. The tests that need a
removable medium (INQUIRY RMB) skip there; they run again, alone, against a second target
whose LUN is `removable: true`. A whole run on that LUN scores the same, but an eject
test failing half-way would leave the medium out and fail every test after it, and the
fixed disk is what most deployments serve. The runs are merged per test: a failure in
either is a failure, a pass in either a pass (a skip only says that run could not try it).

The failure left cannot pass: iSCSIDataSnInvalid wants each of its four writes with a
broken DataSN to fail, and libiscsi's own helper prints "[FAILED] WRITE10 command failed"
for every write that does, which the scorer counts (CUnit counts the test passed).
"""

import subprocess
from pathlib import Path

import pytest

from ..peers import in_ci, require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:conformance"
REMOVABLE_TARGET = "iqn.2026-11.org.example.test:conformance-removable"
LIBISCSI_INITIATORS = [  # the names iscsi-test-cu logs in with
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2",
]
REMOVABLE_SUITES = "SCSI.PreventAllow,SCSI.StartStopUnit,SCSI.NoMedia"
SCORER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "testcu-score"
MIN_PASS = 208
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


def run_suite(program: str, url: str, log: Path, *options: str) -> dict[str, str]:
    with log.open("wb") as out:
        subprocess.run(
            [program, "-d", "-v", *options, url], stdout=out, stderr=subprocess.STDOUT, timeout=300
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
    image = {"lun": 0, "size": "64MiB"}
    luns = {
        TARGET: image | {"path": str(tmp_path / "lun0.img")},
        REMOVABLE_TARGET: image | {"path": str(tmp_path / "removable.img"), "removable": True},
    }
    targets = [
        {"name": name, "luns": [lun], "allowed_initiators": LIBISCSI_INITIATORS}
        for name, lun in luns.items()
    ]
    our_server.configure(targets=targets)
    our_server.start()
    url = f"iscsi://127.0.0.1:{port}/{{}}/0"
    fixed = run_suite(program, url.format(TARGET), tmp_path / "iscsi-test-cu.log")
    removable = run_suite(
        program,
        url.format(REMOVABLE_TARGET),
        tmp_path / "iscsi-test-cu-removable.log",
        "-t",
        REMOVABLE_SUITES,
    )
    assert "PreventAllow.Eject" in removable, f"{REMOVABLE_SUITES} did not run: {removable}"
    merged = dict(fixed)
    for name, outcome in removable.items():
        if name not in merged or _RANK[outcome] > _RANK[merged[name]]:
            merged[name] = outcome
    counts = {kind: sum(1 for o in merged.values() if o == kind) for kind in _RANK}
    passed, skipped, failed = counts["pass"], counts["skip"], counts["fail"]
    summary = f"tests={len(merged)} pass={passed} skip={skipped} fail={failed}"
    failures = {name for name, outcome in merged.items() if outcome == "fail"}
    assert failures <= EXPECTED_FAILURES, f"new failures: {failures - EXPECTED_FAILURES}"
    assert failed <= MAX_FAIL and passed >= MIN_PASS, summary
    assert "Traceback" not in our_server.log()
