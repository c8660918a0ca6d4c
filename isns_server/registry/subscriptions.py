"""SCNReg, SCNDereg, SCNEvent (RFC 4171 5.6.5.5-5.6.5.7, 5.7.5.5-5.7.5.7): which events
a Storage Node is notified of, and events a client asks the server to notify.

The SCN Bitmap is a node attribute (6.4.4), so it is saved with the entity and survives
a restart. Bit positions are RFC 4171's (bit 31 is the least significant), as
`isnsp.constants.ScnBitmap` maps them.
"""

from ..isnsp.constants import ScnBitmap, Status, Tag
from ..names import normalize_name
from .context import Context, Reply
from .objects import StorageNode
from .outcome import Reject, entity_ref
from .schema import is_fc
from .zoning import is_control_node

# The bits RFC 4171 defines; a bitmap with any other is refused rather than silently
# never matching (clients that count bits from the other end set those).
DEFINED_BITS = 0xFF
EVENT_BITS = (
    ScnBitmap.OBJECT_ADDED
    | ScnBitmap.OBJECT_UPDATED
    | ScnBitmap.OBJECT_REMOVED
    | ScnBitmap.DD_MEMBER_ADDED
    | ScnBitmap.DD_MEMBER_REMOVED
)
# What an SCNEvent may ask to announce: changes to a node, not to DDs (those are the
# server's to report, with their IDs).
CLIENT_EVENT_BITS = int(
    ScnBitmap.OBJECT_ADDED | ScnBitmap.OBJECT_UPDATED | ScnBitmap.OBJECT_REMOVED
)


def scn_reg(ctx: Context) -> Reply:
    """Set the SCN Bitmap of the node the Message Key names (5.6.5.5). Refused with SCN
    Registration Rejected when the bitmap asks for no event or sets undefined bits, or
    when no portal of the node's entity has an SCN Port to deliver to; a management
    registration is for Control Nodes sending from isns.control_networks only (Source
    Unauthorized otherwise)."""
    node = _keyed_node(ctx)
    if node is None:
        raise Reject(Status.NO_SUCH_ENTRY)
    bitmap = _bitmap(ctx, Status.SCN_REGISTRATION_REJECTED)
    if not bitmap & EVENT_BITS or bitmap & ~DEFINED_BITS:
        raise Reject(Status.SCN_REGISTRATION_REJECTED)
    management = bitmap & ScnBitmap.MANAGEMENT_REGISTRATION
    control = ctx.scope.control_network and is_control_node(ctx.policy, node.name, node)
    if management and not control:
        raise Reject(Status.SOURCE_UNAUTHORIZED)
    if not any(portal.scn_port is not None for portal in node.entity.portals.values()):
        raise Reject(Status.SCN_REGISTRATION_REJECTED)
    _set_bitmap(ctx, node, bitmap)
    return (), ()


def scn_dereg(ctx: Context) -> Reply:
    """Clear the SCN Bitmap of the node the Message Key names (5.6.5.6); a node that is not
    registered has nothing to clear, which is not an error."""
    node = _keyed_node(ctx)
    if node is not None and node.scn_bitmap is not None:
        _set_bitmap(ctx, node, None)
    return (), ()


def scn_event(ctx: Context) -> Reply:
    """Have the server notify the nodes that see the keyed node of the event in the SCN
    Event Bitmap (5.6.5.7): object added, updated or removed, else SCN Event Rejected.
    Nothing in the database changes."""
    node = _keyed_node(ctx)
    if node is None:
        raise Reject(Status.NO_SUCH_ENTRY)
    bitmap = _bitmap(ctx, Status.SCN_EVENT_REJECTED)
    if not bitmap or bitmap & ~CLIENT_EVENT_BITS:
        raise Reject(Status.SCN_EVENT_REJECTED)
    ctx.journal.requested.append((node, ScnBitmap(bitmap)))
    return (), ()


def _keyed_node(ctx: Context) -> StorageNode | None:
    """The registered node the one iSCSI Name Message Key names (None: not registered or
    not visible to the source). The source must be of its entity, or a Control Node."""
    ctx.require_known()
    keys = ctx.keys
    if len(keys) == 1 and is_fc(keys[0].tag):
        raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
    if len(keys) != 1 or keys[0].tag != Tag.ISCSI_NAME or not isinstance(keys[0].value, str):
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    node = ctx.db.nodes.get(normalize_name(keys[0].value))
    scope = ctx.scope
    if node is None or not scope.sees_node(node):
        return None
    if not scope.is_control and node.entity is not scope.entity:
        raise Reject(Status.SOURCE_UNAUTHORIZED)
    return node


def _bitmap(ctx: Context, invalid: Status) -> int:
    """The one SCN Bitmap of the Operating Attributes (a missing one is `invalid`)."""
    operating = ctx.operating
    if any(is_fc(attr.tag) for attr in operating):
        raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
    if len(operating) != 1 or operating[0].tag != Tag.ISCSI_SCN_BITMAP:
        raise Reject(invalid)
    value = operating[0].value
    if not isinstance(value, int):
        raise Reject(invalid)
    return value


def _set_bitmap(ctx: Context, node: StorageNode, bitmap: int | None) -> None:
    node.scn_bitmap = bitmap
    ctx.db.refresh_subscription(node)
    ctx.journal.dirty.add(entity_ref(node.entity.eid))
