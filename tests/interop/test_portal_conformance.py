"""libiscsi's SCSI/iSCSI conformance suite against a file LUN of the portal, scored per
unique test with ../shared/tools/testcu-score. Fails on any regression of the score.

The failure left cannot pass: iSCSIDataSnInvalid wants each of its four writes with a
broken DataSN to fail, and libiscsi's own helper prints "[FAILED] WRITE10 command failed"
for every write that does, which the scorer counts (CUnit counts the test passed).
"""

import re
import subprocess
from pathlib import Path

import pytest

from ..peers import in_ci, require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:conformance"
LIBISCSI_INITIATORS = [  # the names iscsi-test-cu logs in with
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
    "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2",
]
SCORER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "testcu-score"
MIN_PASS = 199
MAX_FAIL = 1
EXPECTED_FAILURES = {"iSCSIdatasn.iSCSIDataSnInvalid"}


def score(log: Path, kind: str | None = None) -> str:
    extra = ["--list", kind] if kind else []
    done = subprocess.run(
        [str(SCORER), str(log), *extra], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def test_iscsi_test_cu_conformance(our_server: OurServer, tmp_path: Path) -> None:
    program = require("iscsi-test-cu")
    if not SCORER.exists():
        message = f"{SCORER} is missing"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "lun0.img"), "size": "64MiB"}
    target = {"name": TARGET, "luns": [lun], "allowed_initiators": LIBISCSI_INITIATORS}
    our_server.configure(targets=[target])
    our_server.start()
    log = tmp_path / "iscsi-test-cu.log"
    with log.open("wb") as out:
        subprocess.run(
            [program, "-d", "-v", f"iscsi://127.0.0.1:{port}/{TARGET}/0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    summary = score(log)
    found = re.search(r"tests=(\d+) pass=(\d+) skip=(\d+) fail=(\d+)", summary)
    assert found, summary
    passed, failed = int(found.group(2)), int(found.group(4))
    failures = set(score(log, "fail").split()) - {w for w in summary.split()}
    assert failures <= EXPECTED_FAILURES, f"new failures: {failures - EXPECTED_FAILURES}"
    assert failed <= MAX_FAIL and passed >= MIN_PASS, summary
    assert "Traceback" not in our_server.log()
