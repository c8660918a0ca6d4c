"""Connection admission (issue 12 item 1): total and per-source caps, counted back down
when connections end; no sockets (a fake transport)."""

import asyncio
import logging

import pytest

from isns_server.admission import Admission, ConnectionLimits


class FakeTransport(asyncio.Transport):
    def __init__(self, host: str) -> None:
        super().__init__()
        self.peer = (host, 40000)
        self.aborted = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def abort(self) -> None:
        self.aborted = True


async def test_caps_per_source_and_in_total(caplog: pytest.LogCaptureFixture) -> None:
    admission = Admission("iSNS", ConnectionLimits("isns", 3, 2, None))
    a1, a2, a3 = (FakeTransport("192.0.2.1") for _ in range(3))
    first, second = admission.admit(a1), admission.admit(a2)
    assert first is not None and second is not None
    with caplog.at_level(logging.WARNING, "isns_server.admission"):
        assert admission.admit(a3) is None and a3.aborted  # third from one source
        assert admission.admit(FakeTransport("192.0.2.1")) is None  # logged once
    assert len(caplog.records) == 1
    assert "(isns.max_connections_per_source)" in caplog.records[0].getMessage()

    b1 = FakeTransport("192.0.2.2")
    assert admission.admit(b1) is not None  # another source: served
    b2 = FakeTransport("192.0.2.3")
    assert admission.admit(b2) is None and b2.aborted  # three held: the total cap
    first.release()
    assert admission.connections == {a2, b1}
    assert admission.admit(FakeTransport("192.0.2.3")) is not None
    again = FakeTransport("192.0.2.1")
    second.release()
    assert admission.admit(again) is not None  # its count went down with the releases
