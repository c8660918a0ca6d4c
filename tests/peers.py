"""Real peers (Debian packages) the interop tests drive, and how a missing one is treated.

Outside CI a missing peer skips the test with the package to install; in CI (`CI=true`)
it fails, so a broken `.ci/run` cannot pass by testing nothing.
"""

import os
import shutil

import pytest

PACKAGES = {
    "isnsadm": "open-isns-utils",
    "isnsd": "open-isns-server",
    "isnsdd": "open-isns-discoveryd",
    "iscsi-ls": "libiscsi-bin",
    "iscsi-inq": "libiscsi-bin",
    "iscsi-test-cu": "libiscsi-bin",
    "iscsi-perf": "libiscsi-bin",
    "iscsi-readcapacity16": "libiscsi-bin",
    "qemu-img": "qemu-utils",
    "qemu-io": "qemu-utils",
    "tgtd": "tgt",
    "tgtadm": "tgt",
    "etcd": "etcd-server",
    "chromium": "chromium",
    "promtool": "prometheus",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(program: str) -> str:
    """The path of `program`; skips (or, in CI, fails) the test when it is not installed."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{program} not installed (apt-get install {PACKAGES.get(program, program)})"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
