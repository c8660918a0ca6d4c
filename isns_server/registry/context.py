"""The request a handler works on, and the checks every handler shares."""

from dataclasses import dataclass

from ..isnsp.constants import Status
from ..isnsp.messages import Attribute, Message
from .database import Database
from .outcome import Journal, Reject
from .policy import Policy
from .zoning import Scope, is_control_node

# What a successful handler answers: (Message Key attributes, Operating Attributes).
Reply = tuple[tuple[Attribute, ...], tuple[Attribute, ...]]


@dataclass(slots=True)
class Context:
    db: Database
    policy: Policy
    message: Message
    scope: Scope  # the Source node's view (zoning.py)
    keys: tuple[Attribute, ...]
    operating: tuple[Attribute, ...]
    now: float
    journal: Journal

    def require_known(self) -> None:
        """Source Unknown unless the source is registered or a configured Control Node."""
        if self.scope.node is None and not self.scope.is_control:
            raise Reject(Status.SOURCE_UNKNOWN)

    def require_control(self) -> None:
        """Only Control Nodes manage DDs and DD sets (2.4 "DD/DDS Modification"), and only
        from isns.control_networks: from elsewhere a Control Node's name is refused
        whether it is registered or not."""
        scope = self.scope
        if not scope.control_network and is_control_node(self.policy, scope.name, scope.node):
            raise Reject(Status.SOURCE_UNAUTHORIZED)
        self.require_known()
        if not self.scope.is_control:
            raise Reject(Status.SOURCE_UNAUTHORIZED)
