"""The management API's listener is bounded like every TCP front-end (issue 12 item 1):
a total cap, a per-source cap, an idle timeout that closes silent connections but not a
live event stream, and TLS connections counted from the moment they are accepted. The
greedy client is 127.0.0.4 (the start-up check's connection from 127.0.0.1 may still be
closing), the bystander 127.0.0.2."""

import re
import socket
import ssl
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from isns_server.api.events import KEEPALIVE
from isns_server.config.loader import API_MIN_IDLE_TIMEOUT, ConfigError, parse_config

from ..polling import eventually_sync
from ..processes import OurServer
from .test_api import start_with_api
from .test_api_tls import self_signed
from .test_connection_limits import BYSTANDER, PROBE, closed_by_server, connect

GREEDY = "127.0.0.4"
PER_SOURCE = 3


def api_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def http_status(sock: socket.socket, path: str = "/healthz", headers: str = "") -> int:
    """Send one GET on `sock` and read its status line (0: closed before it came)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        head += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert match, head
    return int(match[1])


def served(port: int, source: str) -> bool:
    with connect(port, source) as sock:
        try:
            return http_status(sock) == 200
        except ConnectionResetError:
            return False


def admitted(port: int, source: str) -> socket.socket:
    """A connection from `source` that has been served (and stays open): tried again while
    the server is still releasing a connection closed just before."""

    def attempt() -> socket.socket | None:
        sock = connect(port, source)
        try:
            if http_status(sock) == 200:
                return sock
        except ConnectionResetError:
            pass
        sock.close()
        return None

    sock = eventually_sync(
        attempt, lambda found: found is not None, what=f"a connection from {source} served"
    )
    assert sock is not None
    return sock


def still_open(sock: socket.socket) -> bool:
    """A connection over a cap is closed at once; one admitted is not."""
    sock.settimeout(1)
    try:
        return not closed_by_server(sock)
    finally:
        sock.settimeout(10)


def test_over_a_cap_a_connection_is_refused_and_others_are_served(
    our_server: OurServer,
) -> None:
    url, _ = start_with_api(our_server, max_connections_per_source=PER_SOURCE, max_connections=5)
    port = api_port(url)
    with ExitStack() as stack:
        held = [stack.enter_context(admitted(port, GREEDY)) for _ in range(PER_SOURCE)]
        assert closed_by_server(stack.enter_context(connect(port, GREEDY)))
        assert served(port, BYSTANDER)
        # Two more from a third address fill the total cap: the bystander is refused too.
        stack.enter_context(admitted(port, PROBE))
        stack.enter_context(admitted(port, PROBE))
        assert closed_by_server(stack.enter_context(connect(port, BYSTANDER)))
        assert http_status(held[0]) == 200  # the greedy client's own connections still work
        held[1].close()
        # Its place is free again.
        eventually_sync(lambda: served(port, BYSTANDER), what=f"{BYSTANDER} served")
    log = our_server.log()
    assert "(api.max_connections_per_source)" in log and "(api.max_connections)" in log
    assert "Traceback" not in log


def test_a_silent_connection_is_closed_and_an_event_stream_is_not(our_server: OurServer) -> None:
    """One idle timeout (20 s, the least allowed) passes while an event stream with no
    change to send stays open; a silent connection and a half-sent request are closed."""
    idle = API_MIN_IDLE_TIMEOUT
    url, headers = start_with_api(
        our_server, idle_timeout=idle, max_connections_per_source=PER_SOURCE
    )
    port = api_port(url)
    token = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with ExitStack() as stack:
        stream = stack.enter_context(connect(port, GREEDY))
        opened = time.monotonic()
        assert http_status(stream, "/api/v1/events", token) == 200
        silent = stack.enter_context(connect(port, GREEDY))
        half_sent = stack.enter_context(connect(port, GREEDY))
        half_sent.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127")
        assert still_open(silent) and still_open(half_sent)
        received = b""
        stream.settimeout(KEEPALIVE + 10)
        while time.monotonic() - opened < idle + 5:  # bounded: the socket times out
            chunk = stream.recv(4096)
            assert chunk, f"the event stream was closed after {time.monotonic() - opened:.0f} s"
            received += chunk
        assert received.count(b": keepalive") >= 1
        for sock in (silent, half_sent):
            assert closed_by_server(sock), "a silent connection outlived api.idle_timeout"
        # The closed ones no longer count: the stream and two more fill the cap.
        stack.enter_context(admitted(port, GREEDY))
        stack.enter_context(admitted(port, GREEDY))
        assert closed_by_server(stack.enter_context(connect(port, GREEDY)))
    assert "Traceback" not in our_server.log()


def test_tls_connections_count_from_accept_and_are_served(
    our_server: OurServer, tmp_path: Path
) -> None:
    """Connections that have not begun their handshake already hold their places; one of
    them can still finish it and be served."""
    tls = self_signed(tmp_path)
    url, _ = start_with_api(
        our_server,
        tls={"cert": str(tls.cert), "key": str(tls.key)},
        max_connections_per_source=PER_SOURCE,
    )
    port = api_port(url)
    trusted = ssl.create_default_context(cafile=str(tls.cert))
    with ExitStack() as stack:
        held = [stack.enter_context(connect(port, GREEDY)) for _ in range(PER_SOURCE)]
        assert all(still_open(sock) for sock in held)
        assert closed_by_server(stack.enter_context(connect(port, GREEDY)))
        secure = stack.enter_context(trusted.wrap_socket(held[0], server_hostname="127.0.0.1"))
        assert http_status(secure) == 200
        bystander = connect(port, BYSTANDER)
        with trusted.wrap_socket(bystander, server_hostname="127.0.0.1") as other:
            assert http_status(other) == 200
    log = our_server.log()
    assert "(api.max_connections_per_source)" in log and "Traceback" not in log


def test_malformed_requests_are_answered_400_and_logged_once(our_server: OurServer) -> None:
    """aiohttp would log a traceback at ERROR for each: one line per source and minute."""
    url, _ = start_with_api(our_server)
    port = api_port(url)
    bad = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(200)) + b"\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    )
    for request in bad:
        with connect(port, GREEDY) as sock:
            sock.sendall(request)
            assert sock.recv(64).startswith(b"HTTP/1.0 400 ")
    assert served(port, BYSTANDER)
    log = our_server.log()
    assert log.count("malformed HTTP request from 127.0.0.4") == 1, log[-2000:]
    assert "Traceback" not in log and "ERROR" not in log


def test_an_idle_timeout_that_would_cut_event_streams_is_refused() -> None:
    assert API_MIN_IDLE_TIMEOUT > KEEPALIVE
    with pytest.raises(ConfigError, match=r"api\.idle_timeout: must be at least 20"):
        parse_config("api: {idle_timeout: 19}")
    assert parse_config("api: {idle_timeout: 20}").api.idle_timeout == 20
