"""The administratively controlled settings of RFC 4171 2.4 that the registry applies."""

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from ..names import normalize_name

DEFAULT_REGISTRATION_PERIOD = 900  # seconds


@dataclass(frozen=True, slots=True)
class Policy:
    """`default_dd`: nodes that are members of no DD see each other (2.2.2's "default DD").
    `control_nodes`: iSCSI names that are Control Nodes (2.4 "Authorized Control Nodes"):
    they see every object, may manage DDs and DD sets, and may register the Control node
    type. `registration_period`: what an entity that asks for none gets (6.2.6).
    `esi_min_interval`, `esi_max_interval`: the range ESI Intervals are clamped to, in
    seconds (6.3.4); `esi_retries`: ESI messages a portal may leave unanswered before it
    is deregistered. `control_networks`: where Control Nodes may send from; a request
    naming one as its Source from elsewhere is answered without control rights
    (`Registry.handle`, `zoning.Scope`): DD and DD set changes, registering the Control
    type and a management SCN registration are refused, queries see what any node sees.
    """

    default_dd: bool = True
    control_nodes: frozenset[str] = frozenset()
    registration_period: int = DEFAULT_REGISTRATION_PERIOD
    esi_min_interval: int = 20
    esi_max_interval: int = 300
    esi_retries: int = 3
    control_networks: tuple[IPv4Network | IPv6Network, ...] = (
        ip_network("127.0.0.0/8"),
        ip_network("::1/128"),
    )

    def __post_init__(self) -> None:
        # Names are compared normalised (5.6.2), whatever case the configuration used.
        normalized = frozenset(normalize_name(name) for name in self.control_nodes)
        object.__setattr__(self, "control_nodes", normalized)
