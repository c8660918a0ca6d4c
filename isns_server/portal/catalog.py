"""What the portal knows when it answers a login or a SendTargets: its own targets and
their credentials, the registry's zoning, and the sessions that are live."""

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ..names import normalize_name
from ..registry import Registry, TargetPortal, VisibleTarget
from ..scsi import ScsiTarget
from .iscsi.chap import ChapPolicy
from .iscsi.login import LoginResult, TargetRecord
from .iscsi.negotiation import SessionParameters
from .local_targets import LocalTarget
from .session.full_feature import SessionCounters

_TSIH_COUNT = 0xFFFF  # TSIHs are 16-bit and never 0 (10.12.6)
_SessionKey = tuple[str, bytes, str | None]  # initiator, ISID, target: one I_T nexus


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session in the Full Feature Phase: its login, how to end it if a new login takes
    it over, the initiator's address, when it logged in (the connection's clock) and its
    traffic so far."""

    login: LoginResult
    reinstated: Callable[[], None]
    peer: str
    since: float
    counters: SessionCounters


class PortalCatalog:
    """A LoginDirectory and SessionServices over the registry and the configuration."""

    def __init__(
        self,
        registry: Registry,
        targets: Mapping[str, LocalTarget],
        discovery_chap: ChapPolicy | None,
        portals: Sequence[TargetPortal],
    ) -> None:
        self.registry = registry
        self.targets = targets  # by normalised name
        self._discovery_chap = discovery_chap
        self.portals = tuple(portals)  # where this portal's targets are registered
        self._live_tsihs: set[int] = set()
        self._tsihs = itertools.count(1)
        # The live sessions by initiator, ISID and target, for reinstatement (5.3.5)
        self._sessions: dict[_SessionKey, LiveSession] = {}

    # LoginDirectory ------------------------------------------------------------------

    def find_target(self, name: str) -> TargetRecord | None:
        target = self.targets.get(normalize_name(name))
        return target.record if target else None

    def discovery_chap(self) -> ChapPolicy | None:
        return self._discovery_chap

    def authorize(
        self, initiator_name: str, target_name: str, peer: IPv4Address | IPv6Address | None
    ) -> bool:
        """The iSNS zoning: a shared enabled DD (or the default DD), or the target's
        `allowed_initiators`; a Control Node's name has control rights only from
        isns.control_networks."""
        target = self.targets.get(normalize_name(target_name))
        if target is not None and normalize_name(initiator_name) in target.allowed_initiators:
            return True
        return self.registry.may_see(initiator_name, target_name, peer)

    def find_session(self, initiator_name: str, isid: bytes, tsih: int) -> SessionParameters | None:
        return None  # one connection per session: no login ever joins a session

    def allocate_tsih(self) -> int | None:
        """The next TSIH not held by a live session, round-robin so a closed session's
        TSIH is not reused at once."""
        if len(self._live_tsihs) >= _TSIH_COUNT:
            return None
        while (tsih := next(self._tsihs) % _TSIH_COUNT + 1) in self._live_tsihs:
            pass
        return tsih

    def session_started(
        self,
        result: LoginResult,
        reinstated: Callable[[], None],
        peer: str,
        now: float,
        counters: SessionCounters,
    ) -> None:
        """A session with the same initiator, ISID and target as a live one replaces it."""
        self._live_tsihs.add(result.tsih)
        key = _session_key(result)
        previous = self._sessions.get(key)
        self._sessions[key] = LiveSession(result, reinstated, peer, now, counters)
        if previous is not None:
            previous.reinstated()

    def live_sessions(self) -> list["LiveSession"]:
        """The sessions open now (for the management API)."""
        return list(self._sessions.values())

    def session_ended(self, result: LoginResult) -> None:
        self._live_tsihs.discard(result.tsih)
        key = _session_key(result)
        if (entry := self._sessions.get(key)) is not None and entry.login is result:
            del self._sessions[key]

    # SessionServices -----------------------------------------------------------------

    def visible_targets(
        self, initiator_name: str, peer: IPv4Address | IPv6Address | None
    ) -> list[VisibleTarget]:
        return self.registry.visible_targets(initiator_name, peer)

    def local_target(self, name: str) -> VisibleTarget | None:
        target = self.targets.get(normalize_name(name))
        if target is None:
            return None
        return VisibleTarget(target.record.name, target.record.alias, self.portals)

    def scsi_target(self, name: str) -> ScsiTarget | None:
        target = self.targets.get(normalize_name(name))
        return target.scsi if target else None


def _session_key(result: LoginResult) -> _SessionKey:
    """The initiator side of the session identifier and the target (3.4.3)."""
    parameters = result.parameters
    target = parameters.target_name
    return (
        normalize_name(parameters.initiator_name),
        result.isid,
        normalize_name(target) if target else None,
    )
