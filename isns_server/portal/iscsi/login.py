"""The Login Phase of one connection, target side (RFC 3720 5.3, 10.12, 10.13), sans-IO.

`LoginMachine` takes the PDUs a new connection receives and returns the Login
Responses to send. It checks the header rules of 10.12 (version, ISID, TSIH, stages,
the T and C bits), joins continued text, identifies initiator and target through a
`LoginDirectory`, runs the security stage (AuthMethod, CHAP) and the operational
stage (`Negotiation`), and on the final response yields a `LoginResult`. Any failure
is answered with a Login reject carrying the status of 10.13.5, after which the
connection must be closed.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from .chap import ChapAuthenticator, ChapPolicy, ChapState, RandomBytes
from .constants import DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH, LoginStage, LoginStatus
from .errors import TextFormatError
from .keys import VERSION, LoginError, SessionType
from .negotiation import Negotiation, NegotiationPolicy, Pair, SessionParameters
from .pdu import LoginRequest, LoginResponse, Pdu
from .text import KeyValuePairs, TextAccumulator, encode_text, split_text

# 5.3: stage transitions a Login Request may ask for, from its CSG
_NEXT_STAGES = {
    LoginStage.SECURITY_NEGOTIATION: (
        LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
        LoginStage.FULL_FEATURE_PHASE,
    ),
    LoginStage.LOGIN_OPERATIONAL_NEGOTIATION: (LoginStage.FULL_FEATURE_PHASE,),
}
# 10.12.4-10.12.7: header fields every Login Request of a Login Phase repeats
_FIXED_FIELDS = ("version_max", "version_min", "isid", "tsih", "itt", "cid")
_SERIAL_MASK = 0xFFFFFFFF  # StatSN and CmdSN wrap (serial number arithmetic)
AUTH_CHAP = "CHAP"
AUTH_NONE = "None"


class LoginState(Enum):
    AWAITING_LOGIN = "awaiting the first Login Request"
    NEGOTIATING = "negotiating"
    FULL_FEATURE = "full feature phase"  # `result` is set
    FAILED = "failed"  # send what receive() returned, then close the connection


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """What the login needs to know about a target."""

    name: str
    chap: ChapPolicy | None = None  # None: no authentication required
    alias: str | None = None  # TargetAlias, declared in normal sessions (12.6)
    removed: bool = False  # known but gone: "target removed" rather than "not found"

    def __post_init__(self) -> None:
        if self.alias is not None:
            try:  # refused here rather than failing every login with an unsendable alias
                encode_text([("TargetAlias", self.alias)])
            except TextFormatError as exc:
                raise ValueError(f"alias of {self.name}: {exc}") from None


class LoginDirectory(Protocol):
    """What the portal knows: targets, credentials, zoning and live sessions."""

    def find_target(self, name: str) -> TargetRecord | None: ...

    def discovery_chap(self) -> ChapPolicy | None:
        """CHAP required for discovery sessions, or None."""
        ...

    def authorize(
        self, initiator_name: str, target_name: str, peer: IPv4Address | IPv6Address | None
    ) -> bool:
        """Whether zoning lets the initiator, connected from `peer`, log in to the target
        (None: an in-process caller)."""
        ...

    def find_session(self, initiator_name: str, isid: bytes, tsih: int) -> SessionParameters | None:
        """The live session a login with a non-zero TSIH joins, or None (5.3.1)."""
        ...

    def allocate_tsih(self) -> int | None:
        """A new non-zero TSIH for a session being created, or None if none is free."""
        ...


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    negotiation: NegotiationPolicy = field(default_factory=NegotiationPolicy)
    portal_group_tag: int = 1  # TargetPortalGroupTag of the portal accepting the connection
    session_types: frozenset[SessionType] = frozenset(SessionType)  # the ones accepted
    login_timeout: float = 15.0  # seconds from connection to Full Feature Phase
    command_window: int = 32  # commands the target accepts past ExpCmdSN, for MaxCmdSN

    def __post_init__(self) -> None:
        if not 0 <= self.portal_group_tag <= 0xFFFF:
            raise ValueError("portal_group_tag is a 16-bit value")
        if not 1 <= self.command_window <= 2**31:
            raise ValueError("command_window must be between 1 and 2**31")
        if self.login_timeout <= 0:
            raise ValueError("login_timeout must be positive")


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A connection that reached the Full Feature Phase."""

    parameters: SessionParameters
    isid: bytes
    tsih: int
    cid: int
    leading: bool  # a new session; False: a connection joining `find_session`'s session
    cmdsn: int  # ExpCmdSN: the CmdSN of the first non-immediate command (10.12.8)
    statsn: int  # StatSN of the next response on this connection (10.13.4)
    chap_user: str | None  # the CHAP_N the initiator proved, if any
    peer: IPv4Address | IPv6Address | None = None  # the initiator's address (None: in-process)

    @property
    def session_type(self) -> SessionType:
        return self.parameters.session_type

    @property
    def initiator_name(self) -> str:
        return self.parameters.initiator_name

    @property
    def initiator_alias(self) -> str | None:
        return self.parameters.initiator_alias

    @property
    def target_name(self) -> str | None:
        return self.parameters.target_name


@dataclass(slots=True)
class _PendingResponse:
    """A response whose text did not fit one PDU: the rest goes out chunk by chunk (5.2)."""

    chunks: list[bytes]
    transit: bool
    nsg: int
    final: tuple[SessionParameters, int] | None  # parameters and TSIH of a final response


class LoginMachine:
    """The Login Phase of one connection (the target side).

    Feed every PDU the connection receives to `receive` until `state` leaves
    NEGOTIATING. FULL_FEATURE: `result` holds the session; apply its parameters to
    the PduReader (`SessionParameters.apply_to`) once the last response is written.
    FAILED: write the responses returned, then close; `failure` says why. Call
    `handle_timer` at `deadline`.
    """

    def __init__(
        self,
        policy: LoginPolicy,
        directory: LoginDirectory,
        *,
        now: float,
        random_bytes: RandomBytes = secrets.token_bytes,
        peer: IPv4Address | IPv6Address | None = None,
    ) -> None:
        """`peer`: the initiator's address, for zoning (None: an in-process caller)."""
        self.policy = policy
        self.directory = directory
        self.peer = peer
        self.state = LoginState.AWAITING_LOGIN
        self.result: LoginResult | None = None
        self.failure: LoginError | None = None
        self.deadline = now + policy.login_timeout
        self._random_bytes = random_bytes
        self._first: LoginRequest | None = None
        self._stage = LoginStage.SECURITY_NEGOTIATION
        self._statsn = 0
        self._text = TextAccumulator()
        self._pending: _PendingResponse | None = None
        self._session: SessionParameters | None = None  # joined by a non-leading login
        self._negotiation: Negotiation | None = None  # from the first complete text on
        self._chap_policy: ChapPolicy | None = None
        self._chap: ChapAuthenticator | None = None

    def receive(self, pdu: Pdu, now: float) -> list[LoginResponse]:
        """The responses to one received PDU, in order."""
        if self.state in (LoginState.FULL_FEATURE, LoginState.FAILED):
            raise RuntimeError(f"the login is over: {self.state.value}")
        if self.handle_timer(now):
            return []
        if not isinstance(pdu, LoginRequest):
            error = LoginError(LoginStatus.INVALID_DURING_LOGIN, f"{type(pdu).__name__} in login")
            return self.refuse(error)
        try:
            return [self._login(pdu)]
        except LoginError as error:
            return [self._reject(error)]
        except TextFormatError as error:
            return [self._reject(LoginError(error.login_status, str(error)))]

    def refuse(self, error: LoginError, request: LoginRequest | None = None) -> list[LoginResponse]:
        """End the login with `error`, e.g. for a PDU the codec could not read: a Login
        reject once the Login Phase has begun (or `request`, the unreadable PDU's header,
        begins it); before that nothing, the connection just closes (3.2.3)."""
        if self.state in (LoginState.FULL_FEATURE, LoginState.FAILED):
            raise RuntimeError(f"the login is over: {self.state.value}")
        if self._first is None and request is not None:
            self._first = request
            self._statsn = request.expstatsn
        if self._first is None:
            self._fail(error)
            return []
        return [self._reject(error)]

    @property
    def names(self) -> tuple[str | None, str | None]:
        """InitiatorName and TargetName, once the first complete text named them (for logs)."""
        negotiation = self._negotiation
        if negotiation is None:
            return None, None
        initiator, target = negotiation.value("InitiatorName"), negotiation.value("TargetName")
        return (None if initiator is None else str(initiator)), (
            None if target is None else str(target)
        )

    def handle_timer(self, now: float) -> bool:
        """True if the login just timed out: close the connection (5.2 lets us give up)."""
        if self.state not in (LoginState.AWAITING_LOGIN, LoginState.NEGOTIATING):
            return False
        if now < self.deadline:
            return False
        timeout = self.policy.login_timeout
        self._fail(LoginError(LoginStatus.INITIATOR_ERROR, f"login not done in {timeout} s"))
        return True

    # Requests ------------------------------------------------------------------------

    def _login(self, request: LoginRequest) -> LoginResponse:
        if self._first is None:
            self._start(request)
        else:
            for name in _FIXED_FIELDS:
                if getattr(request, name) != getattr(self._first, name):
                    raise LoginError(LoginStatus.INITIATOR_ERROR, f"{name} changed during login")
        if request.transit and request.continue_:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "T and C bits both set (10.12.2)")
        if request.csg != self._stage:
            raise LoginError(
                LoginStatus.INITIATOR_ERROR, f"CSG {request.csg} in stage {self._stage.name}"
            )
        if self._pending is not None:
            # 5.2: the initiator acknowledges each part of a continued response, empty
            if request.data or request.continue_:
                raise LoginError(LoginStatus.INITIATOR_ERROR, "text sent before our response")
            return self._next_chunk()
        if request.transit and request.nsg not in _NEXT_STAGES[self._stage]:
            raise LoginError(
                LoginStatus.INITIATOR_ERROR, f"no transition {self._stage.name} -> {request.nsg}"
            )
        pairs = self._text.feed(request.data, request.continue_)
        if pairs is None:
            return self._respond(b"")  # 5.2: a continued request is answered with no data
        return self._negotiate(request, pairs)

    def _start(self, request: LoginRequest) -> None:
        self._first = request
        self._statsn = request.expstatsn  # the connection's StatSN starts where it expects
        self.state = LoginState.NEGOTIATING
        if not request.version_min <= VERSION <= request.version_max:
            raise LoginError(
                LoginStatus.UNSUPPORTED_VERSION,
                f"versions {request.version_min}..{request.version_max} exclude {VERSION}",
            )
        if request.isid[0] >> 6 == 0b11:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "ISID type 11b is reserved (10.12.5)")
        if request.csg not in _NEXT_STAGES:
            raise LoginError(LoginStatus.INITIATOR_ERROR, f"login starts in stage {request.csg}")
        self._stage = LoginStage(request.csg)

    def _negotiate(self, request: LoginRequest, pairs: KeyValuePairs) -> LoginResponse:
        negotiation = self._negotiation
        initial = negotiation is None
        if negotiation is None:
            negotiation = self._negotiation = self._join_session(request, pairs)
        step = negotiation.receive(pairs, self._stage, initial=initial)
        answers = list(step.answers)
        declarations = self._admit(negotiation) if initial else []
        awaiting = False  # the response carries keys the initiator must answer
        if self._stage is LoginStage.SECURITY_NEGOTIATION:
            more, awaiting = self._authenticate(step.authentication)
            answers += more
        elif initial and self._chap_policy is not None:
            # 5.3.1: an initiator skipping the security stage is refused
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "CHAP required")
        answers += declarations + negotiation.declarations(self._stage)
        transit = request.transit and not awaiting
        if transit and not self._authenticated():
            raise self._unauthenticated()
        final = None
        if transit and request.nsg == LoginStage.FULL_FEATURE_PHASE:
            final = (negotiation.result(self.policy.portal_group_tag), self._tsih(request))
        return self._send(answers, transit, request.nsg if transit else 0, final)

    def _join_session(self, request: LoginRequest, pairs: KeyValuePairs) -> Negotiation:
        """The negotiation of this login; a non-zero TSIH must name a live session."""
        initiator = pairs.get("InitiatorName")
        if not initiator:  # 5.3: the first Login Request of every connection names it
            raise LoginError(LoginStatus.MISSING_PARAMETER, "InitiatorName missing")
        if request.tsih:
            self._session = self.directory.find_session(initiator, request.isid, request.tsih)
            if self._session is None:
                raise LoginError(
                    LoginStatus.SESSION_DOES_NOT_EXIST, f"no session with TSIH {request.tsih}"
                )
        return Negotiation(self.policy.negotiation, self._session)

    def _admit(self, negotiation: Negotiation) -> list[Pair]:
        """Check session type and target after the first text; our declarations for it."""
        initiator = str(negotiation.value("InitiatorName"))
        session_type = negotiation.value("SessionType")
        if session_type not in self.policy.session_types:
            raise LoginError(
                LoginStatus.SESSION_TYPE_NOT_SUPPORTED, f"{session_type} sessions not accepted"
            )
        target_name = negotiation.value("TargetName")
        declarations: list[Pair] = []
        if target_name is not None:  # 5.3.1, 12.9: first response when TargetName given
            declarations.append(("TargetPortalGroupTag", str(self.policy.portal_group_tag)))
        if session_type is SessionType.DISCOVERY:
            self._chap_policy = self.directory.discovery_chap()
            return declarations
        if target_name is None:
            raise LoginError(LoginStatus.MISSING_PARAMETER, "TargetName missing")
        target_name = str(target_name)
        target = self.directory.find_target(target_name)
        if target is None:
            raise LoginError(LoginStatus.NOT_FOUND, f"no target {target_name}")
        if target.removed:
            raise LoginError(LoginStatus.TARGET_REMOVED, f"target {target_name} was removed")
        if self._session is not None and self._session.target_name != target_name:
            raise LoginError(
                LoginStatus.SESSION_DOES_NOT_EXIST, f"the session is not with {target_name}"
            )
        if not self.directory.authorize(initiator, target_name, self.peer):
            raise LoginError(
                LoginStatus.AUTHORIZATION_FAILURE, f"{initiator} may not use {target_name}"
            )
        self._chap_policy = target.chap
        if target.alias:
            declarations.append(("TargetAlias", target.alias))
        return declarations

    def _authenticate(self, keys: Mapping[str, str]) -> tuple[list[Pair], bool]:
        """AuthMethod and CHAP steps; the answers, and whether the initiator must reply."""
        answers: list[Pair] = []
        awaiting = False
        chap_keys = dict(keys)
        methods = chap_keys.pop("AuthMethod", None)
        if methods is not None:
            # 11.1: CHAP when the target has credentials, no authentication otherwise
            method = AUTH_CHAP if self._chap_policy is not None else AUTH_NONE
            if method not in methods.split(","):
                raise LoginError(
                    LoginStatus.AUTHENTICATION_FAILURE, f"AuthMethod={methods} without {method}"
                )
            answers.append(("AuthMethod", method))
            if self._chap_policy is not None:
                self._chap = ChapAuthenticator(
                    self._chap_policy.lookup,
                    self._chap_policy.mutual,
                    random_bytes=self._random_bytes,
                )
                awaiting = True
        if not chap_keys:
            return answers, awaiting
        if self._chap is None:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP keys without AuthMethod=CHAP")
        if self._chap.state is ChapState.AWAITING_ALGORITHM:
            if chap_keys.keys() != {"CHAP_A"}:
                raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP_A expected alone")
            return answers + self._chap.challenge(chap_keys["CHAP_A"]), True
        return answers + self._chap.verify(chap_keys), awaiting

    def _authenticated(self) -> bool:
        if self._chap_policy is None:
            return True
        return self._chap is not None and self._chap.state is ChapState.DONE

    def _unauthenticated(self) -> LoginError:
        """Why leaving the security stage is refused (8.2: a missing step is a missing key)."""
        if self._chap is None:
            return LoginError(LoginStatus.AUTHENTICATION_FAILURE, "AuthMethod=CHAP required")
        if self._chap.state is ChapState.AWAITING_ALGORITHM:
            return LoginError(LoginStatus.MISSING_PARAMETER, "CHAP_A missing")
        return LoginError(LoginStatus.MISSING_PARAMETER, "CHAP_N and CHAP_R missing")

    def _tsih(self, request: LoginRequest) -> int:
        """The TSIH of the final response: the session's, or a new one (10.13.3)."""
        if request.tsih:
            return request.tsih
        tsih = self.directory.allocate_tsih()
        if tsih is None:
            raise LoginError(LoginStatus.OUT_OF_RESOURCES, "no TSIH free")
        if not 0 < tsih <= 0xFFFF:
            raise LoginError(LoginStatus.TARGET_ERROR, f"allocated TSIH {tsih} is invalid")
        return tsih

    # Responses -----------------------------------------------------------------------

    def _send(
        self,
        answers: list[Pair],
        transit: bool,
        nsg: int,
        final: tuple[SessionParameters, int] | None,
    ) -> LoginResponse:
        # The default MaxRecvDataSegmentLength holds during login (5.3).
        chunks = split_text(encode_text(answers), DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH)
        self._pending = _PendingResponse(chunks, transit, nsg, final)
        return self._next_chunk()

    def _next_chunk(self) -> LoginResponse:
        pending = self._pending
        assert pending is not None
        data = pending.chunks.pop(0)
        if pending.chunks:  # 10.13.7: C=1 implies T=0
            return self._respond(data, continue_=True)
        self._pending = None
        if pending.final is None:
            response = self._respond(data, transit=pending.transit, nsg=pending.nsg)
            if pending.transit:
                self._stage = LoginStage(pending.nsg)
            return response
        parameters, tsih = pending.final
        response = self._respond(data, transit=True, nsg=pending.nsg, tsih=tsih)
        first = self._first
        assert first is not None
        self.result = LoginResult(
            parameters,
            isid=first.isid,
            tsih=tsih,
            cid=first.cid,
            leading=self._session is None,
            cmdsn=first.cmdsn,
            statsn=self._statsn,
            chap_user=self._chap.user if self._chap else None,
            peer=self.peer,
        )
        self.state = LoginState.FULL_FEATURE
        self._stage = LoginStage.FULL_FEATURE_PHASE
        return response

    def _reject(self, error: LoginError) -> LoginResponse:
        self._fail(error)
        return self._respond(b"", status=error.status)

    def _fail(self, error: LoginError) -> None:
        self.failure = error
        self.state = LoginState.FAILED

    def _respond(
        self,
        data: bytes,
        *,
        transit: bool = False,
        continue_: bool = False,
        nsg: int = 0,
        tsih: int | None = None,
        status: LoginStatus = LoginStatus.SUCCESS,
    ) -> LoginResponse:
        first = self._first
        assert first is not None
        response = LoginResponse(
            transit=transit,
            continue_=continue_,
            # 5.3.1: in a Login reject the T bit, CSG and NSG are reserved
            csg=self._stage if status is LoginStatus.SUCCESS else 0,
            nsg=nsg,
            version_max=VERSION,
            version_active=VERSION,
            isid=first.isid,
            tsih=first.tsih if tsih is None else tsih,
            itt=first.itt,
            statsn=self._statsn,
            expcmdsn=first.cmdsn,
            maxcmdsn=(first.cmdsn + self.policy.command_window - 1) & _SERIAL_MASK,
            status=status,
            data=data,
        )
        self._statsn = (self._statsn + 1) & _SERIAL_MASK
        return response
