from collections.abc import Iterator
from pathlib import Path

import pytest

from isns_server.scsi import unit

from .peers import require
from .processes import OpenIsnsServer, OurServer

ADMIN = "iqn.2026-11.org.example.test:admin"


@pytest.fixture(autouse=True)
def check_unit_owners(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each logical unit's state is changed by one thread only (docs/architecture.md)."""
    monkeypatch.setattr(unit, "CHECK_OWNER", True)


@pytest.fixture
def our_server(tmp_path: Path) -> Iterator[OurServer]:
    """isns-server on a free loopback port; ADMIN is a control node; not started yet."""
    server = OurServer(tmp_path, registration_period=600, control_nodes=[ADMIN])
    yield server
    if server.process is not None:
        server.stop()


@pytest.fixture
def isnsd(tmp_path: Path) -> Iterator[OpenIsnsServer]:
    server = OpenIsnsServer(tmp_path / "isnsd", require("isnsd"))
    yield server
    server.stop()
