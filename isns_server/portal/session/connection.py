"""One TCP connection to the portal, sans-IO: the Login Phase, then the Full Feature Phase.

Pull-only, in the shape of aioquic's QuicConnection: `receive(now)` (after bytes went
into `reader`: `receive_data`, or `get_buffer`/`buffer_updated` for an
asyncio.BufferedProtocol), `handle_timer(now)` and `task_done(task, result)` only queue.
After each call the adapter takes the SCSI tasks to run from `tasks_to_start()` (run
each, hand its result to `task_done`, and ask again: a result may release more), then
the buffers to write, in order, from `data_to_send()`, and writes once; once `closing`
is set, it writes them and closes. `deadline` and `handle_timer(now)` drive the login
timeout and NOP-In pings. What arises outside those calls (a unit attention raised by
another session, a close when a new login reinstates the session) is queued too and
announced with `io.wake()`: the adapter then asks as after a call.

Bad input gets the RFC's answer: before the first Login Request the connection just
closes (3.2.3); during login, a Login reject (5.3); in the Full Feature Phase a Reject
for a PDU that can be skipped, or a close when the stream can no longer be trusted (6.6,
6.7). Refused and timed-out logins are logged at most once per source address and
`PortalSettings.login_warnings` interval, with a count of those left out.
"""

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...logthrottle import LogThrottle
from ...netaddr import peer_ip
from ...scsi import ScsiResult
from ..iscsi.codec import PduReader, encode_pdu
from ..iscsi.constants import BHS_LENGTH, LoginStatus, Opcode, RejectReason
from ..iscsi.errors import (
    DataSegmentTooLongError,
    HeaderDigestError,
    IscsiError,
    UnsupportedOpcodeError,
)
from ..iscsi.keys import Digest, LoginError
from ..iscsi.login import LoginDirectory, LoginMachine, LoginPolicy, LoginResult, LoginState
from ..iscsi.pdu import LoginRequest, Pdu
from .dataout import WritePolicy
from .full_feature import (
    FullFeatureSession,
    KeepalivePolicy,
    SessionCounters,
    SessionServices,
    SessionStep,
)
from .tasks import Job

log = logging.getLogger(__name__)

# What an administrator can do about a refused login.
_HINTS = {
    LoginStatus.AUTHENTICATION_FAILURE: "check the initiator's CHAP user and secret against"
    " targets[].chap (portal.discovery_chap for discovery sessions)",
    LoginStatus.AUTHORIZATION_FAILURE: "zone them: put both in an enabled discovery domain,"
    " or the initiator in the target's allowed_initiators",
    LoginStatus.NOT_FOUND: "the portal serves only the targets listed under `targets`",
}
# Refused logins in PortalSettings.login_outcomes; any other refusal is "other_failure".
_OUTCOMES = {
    LoginStatus.AUTHENTICATION_FAILURE: "authentication_failure",
    LoginStatus.AUTHORIZATION_FAILURE: "zoning_refused",
    LoginStatus.NOT_FOUND: "target_not_found",
}


class PortalServices(LoginDirectory, SessionServices, Protocol):
    def session_started(
        self,
        result: LoginResult,
        reinstated: Callable[[], None],
        peer: str,
        now: float,
        counters: SessionCounters,
    ) -> None:
        """`reinstated` is called if a later login takes the session over (5.3.5);
        `counters` keep counting while the session lives."""
        ...

    def session_ended(self, result: LoginResult) -> None: ...


class ConnectionIo(Protocol):
    def wake(self) -> None:
        """Output was queued outside the connection's own calls: send it soon."""
        ...


@dataclass(frozen=True, slots=True)
class PortalSettings:
    """What every connection of the portal shares: policies, the write budget, the
    login warnings' throttle, and the count of logins by outcome (for metrics)."""

    login: LoginPolicy
    keepalive: KeepalivePolicy
    writes: WritePolicy
    login_warnings: LogThrottle  # keyed by source address
    login_outcomes: Counter[str] = field(default_factory=Counter)


def login_warnings(interval: float) -> LogThrottle:
    """The portal's throttle for `PortalSettings.login_warnings`: this module's lines."""
    return LogThrottle(log, interval)


class Connection:
    def __init__(
        self,
        services: PortalServices,
        settings: PortalSettings,
        peer: str,
        now: float,
        io: ConnectionIo,
    ) -> None:
        self.reader = PduReader()
        self.peer = peer
        self._source = peer.rpartition(":")[0] or peer  # the host of netaddr's host:port
        self._io = io
        self.closing: str | None = None  # why the connection is being closed
        self.session: FullFeatureSession | None = None
        self._services = services
        self._settings = settings
        self._login = LoginMachine(settings.login, services, now=now, peer=peer_ip(peer))
        self._out: list[bytes | memoryview] = []
        self._tasks: list[Job] = []  # to start, in order
        self._digests = (False, False)  # header, data: none until the Full Feature Phase
        self._login_started = False  # a Login Request arrived: the Login Phase began
        self._warned = False

    def receive(self, now: float) -> None:
        """Handle every complete PDU the reader holds."""
        while self.closing is None:
            try:
                pdu = self.reader.next_pdu()
            except IscsiError as error:
                self._bad_pdu(error, now)
                continue
            if pdu is None:
                return
            if self.session is None:
                self._login_started |= isinstance(pdu, LoginRequest)
                self._send(self._login.receive(pdu, now))
                self._after_login(now)
            else:
                self._apply(self.session.receive(pdu, now))

    def task_done(self, task: Job, result: ScsiResult) -> None:
        """A task this connection started has ended (dropped once the connection is)."""
        if self.session is not None and self.closing is None:
            self._apply(self.session.complete(task, result))

    def tasks_to_start(self) -> list[Job]:
        """The SCSI tasks and unit jobs to run, in order: at once if they need not wait
        for the disk, else on their unit's worker; each result goes to `task_done`."""
        tasks, self._tasks = self._tasks, []
        return tasks

    def data_to_send(self) -> list[bytes | memoryview]:
        out, self._out = self._out, []
        return out

    @property
    def deadline(self) -> float | None:
        if self.closing is not None:
            return None
        return self._login.deadline if self.session is None else self.session.deadline

    def handle_timer(self, now: float) -> None:
        if self.closing is not None:
            return
        if self.session is not None:
            self._apply(self.session.handle_timer(now))
        elif self._login.handle_timer(now):
            self.closing = f"login not completed in {self._settings.login.login_timeout:g} s"
            if self._login_started:
                self._settings.login_outcomes["other_failure"] += 1
            self._login_warning(now, "%s: closing the connection: %s", self._who(), self.closing)

    def connection_lost(self) -> None:
        if self.session is not None:
            self._tasks += self.session.close()  # the nexus's end, for the units' workers
            self._services.session_ended(self.session.login)
            if self.closing is None:
                log.info("%s closed the connection without logging out", self._who())

    # Login Phase ----------------------------------------------------------------------

    def _after_login(self, now: float) -> None:
        state = self._login.state
        if state is LoginState.FAILED:
            self._login_failed(now)
        elif state is LoginState.FULL_FEATURE:
            result = self._login.result
            assert result is not None
            # The final Login Response is queued: what follows uses the new settings.
            result.parameters.apply_to(self.reader)
            parameters = result.parameters
            self._digests = (
                parameters.header_digest is Digest.CRC32C,
                parameters.data_digest is Digest.CRC32C,
            )
            self.session = FullFeatureSession(
                result,
                self._services,
                self._settings.keepalive,
                self._settings.login.command_window,
                now,
                self._push,
                self._settings.writes,
            )
            counters = self.session.counters
            self._services.session_started(result, self._reinstated, self.peer, now, counters)
            self._settings.login_outcomes["success"] += 1
            log.info("%s: session started (TSIH %d)", self._who(), result.tsih)

    def _login_failed(self, now: float) -> None:
        failure = self._login.failure
        assert failure is not None
        if not self._login_started:
            # 3.2.3: not an iSCSI login at all (a port scan, a confused client).
            self._close("it did not start with a Login Request", logging.INFO)
            return
        self._settings.login_outcomes[_OUTCOMES.get(failure.status, "other_failure")] += 1
        hint = _HINTS.get(failure.status)
        self.closing = f"login refused: {failure}"
        self._login_warning(
            now, "%s: login refused: %s%s", self._who(), failure, f"; {hint}" if hint else ""
        )

    def _login_warning(self, now: float, text: str, *args: object) -> None:
        """One source's failed logins: the first of each interval, and how many more."""
        self._settings.login_warnings.warning(self._source, now, text, *args)

    def _push(self, step: SessionStep) -> None:
        if self.closing is None:
            self._apply(step)
            self._io.wake()

    def _reinstated(self) -> None:
        """A new login with this session's initiator, ISID and target replaced it: at
        ErrorRecoveryLevel 0 its connection and unfinished tasks end (5.3.5, 6.3.5)."""
        if self.session is None or self.closing is not None:
            return
        self.session.reinstated = True
        self._close(
            "a new login with the same ISID reinstated the session (RFC 3720 5.3.5)", logging.INFO
        )
        self._io.wake()

    # Errors --------------------------------------------------------------------------

    def _bad_pdu(self, error: IscsiError, now: float) -> None:
        if self.session is None:
            status = (
                LoginStatus.INVALID_DURING_LOGIN
                if isinstance(error, UnsupportedOpcodeError)
                else LoginStatus.INITIATOR_ERROR
            )
            header = error.header
            request = None
            if len(header) >= BHS_LENGTH and header[0] & 0x3F == Opcode.LOGIN_REQUEST:
                request = LoginRequest.unpack(header)
                self._login_started = True
            self._send(self._login.refuse(LoginError(status, str(error)), request))
            self._login_failed(now)
            return
        if error.fatal:
            if isinstance(error, DataSegmentTooLongError):
                # The header is sound: tell the initiator what it did before hanging up.
                self._send([self.session.reject(RejectReason.PROTOCOL_ERROR, error.header)])
            section = "6.7" if isinstance(error, HeaderDigestError) else "6.6"
            self._close(f"{error} (RFC 3720 {section})")
            return
        assert error.reject_reason is not None
        self._send([self.session.reject(error.reject_reason, error.header)])
        level = logging.DEBUG if self._warned else logging.WARNING
        log.log(level, "%s: %s; answered with a Reject", self._who(), error)
        self._warned = True

    # Sending -------------------------------------------------------------------------

    def _apply(self, step: SessionStep) -> None:
        self._send(step.pdus)
        self._tasks += step.tasks
        if step.logged_out:
            self.closing = "logged out"  # 10.14: the target closes after its response
            log.info("%s: logged out", self._who())
        elif step.close is not None:
            self._close(step.close)

    def _send(self, pdus: Sequence[Pdu]) -> None:
        header_digest, data_digest = self._digests
        for pdu in pdus:
            self._out += encode_pdu(pdu, header_digest, data_digest)

    def _close(self, reason: str, level: int = logging.WARNING) -> None:
        self.closing = reason
        log.log(level, "%s: closing the connection: %s", self._who(), reason)

    def _who(self) -> str:
        """Who is at the other end, as far as we know, for log lines."""
        initiator, target = self._login.names
        discovery = self.session is not None and self.session.discovery
        who = f"{self.peer}" + (f" ({initiator})" if initiator else "")
        if discovery:
            return f"discovery session of {who}"
        return f"{who} -> {target}" if target else who
