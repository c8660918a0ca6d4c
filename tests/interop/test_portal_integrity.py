"""Data integrity through the portal's data path: qemu-img writes a 256 MiB random image
into a file LUN over iscsi://, reads it back, and the checksums match, before and after
a server restart."""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from ..peers import require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:integrity"
SIZE = 256 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def qemu_img(*args: str) -> None:
    done = subprocess.run([require("qemu-img"), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_qemu_img_round_trip_survives_a_restart(our_server: OurServer, tmp_path: Path) -> None:
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "lun0.img"), "size": SIZE}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    source = tmp_path / "random.img"
    with source.open("wb") as file:
        for _ in range(SIZE >> 20):
            file.write(os.urandom(1 << 20))
    url = f"iscsi://127.0.0.1:{port}/{TARGET}/0"
    qemu_img("convert", "-n", "-f", "raw", "-O", "raw", str(source), url)
    copy = tmp_path / "copy.img"
    qemu_img("convert", "-f", "raw", "-O", "raw", url, str(copy))
    assert sha256(copy) == sha256(source)
    assert sha256(tmp_path / "lun0.img") == sha256(source)

    our_server.stop()
    our_server.start()
    copy.unlink()
    qemu_img("convert", "-f", "raw", "-O", "raw", url, str(copy))
    assert sha256(copy) == sha256(source)
