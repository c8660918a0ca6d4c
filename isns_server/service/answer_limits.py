"""How much the server says in return for a request: every answer within
`isns.max_message_size`, a UDP answer within a multiple of its request unless the request
comes from an address registered for its Source, and each repeated query attribute
answered once (docs/isns.md, "Limits and abuse resistance")."""

from ipaddress import ip_address

from ..isnsp.codec import encode_message
from ..isnsp.constants import HEADER_LENGTH, Flags, FunctionId, Status, Tag
from ..isnsp.messages import Attribute, Message
from ..isnsp.pdu import UDP_MAX_PDU_PAYLOAD
from ..names import normalize_name
from ..registry import Registry
from ..registry.objects import normalize_ip

# The answer would not fit isns.max_message_size: the query asks for too much at once.
TOO_LARGE = Status.INVALID_QUERY
# Over UDP, more than the factor allows and the source address proves nothing: ask over TCP.
UDP_NOT_PROVEN = Status.SOURCE_UNAUTHORIZED

# Requests whose attributes only select and name what to return: saying one twice asks
# for nothing more, so a repeat can be dropped without changing the meaning.
_QUERIES = frozenset({FunctionId.DEV_ATTR_QRY, FunctionId.DEV_GET_NEXT})


def collapse_repeats(message: Message) -> Message:
    """`message` with repeated attributes of a query dropped (Message Key or Operating
    Attributes; the Source and the Delimiter stay)."""
    attributes = message.attributes
    if message.function not in _QUERIES or len(set(attributes)) == len(attributes):
        return message
    kept = list(attributes[:1])  # the Source, even if a key repeats it
    seen: set[Attribute] = set()
    for attribute in attributes[1:]:
        if attribute.tag == Tag.DELIMITER:
            kept.append(attribute)
            seen.clear()  # keys and operating attributes are separate lists
        elif attribute not in seen:
            seen.add(attribute)
            kept.append(attribute)
    return Message(message.function, message.xid, message.flags, tuple(kept), message.status)


def payload_size(pdus: list[bytes]) -> int:
    return sum(len(pdu) for pdu in pdus) - HEADER_LENGTH * len(pdus)


def refusal(answer: Message, status: Status) -> Message:
    """The answer replaced by an empty one carrying `status`."""
    return Message(answer.function, answer.xid, Flags.SERVER, (), status)


def bounded_stream_answer(answer: Message, max_message_size: int) -> tuple[list[bytes], bool]:
    """The PDUs to send for `answer` over TCP, and False if it was over the size and
    replaced by a refusal."""
    pdus = encode_message(answer)
    if payload_size(pdus) <= max_message_size or not answer.is_response:
        return pdus, True
    return encode_message(refusal(answer, TOO_LARGE)), False


def bounded_datagram_answer(
    answer: Message,
    request: Message,
    request_size: int,
    peer_host: str,
    registry: Registry,
    max_message_size: int,
    factor: int,
) -> tuple[list[bytes], Status | None]:
    """The datagrams to send for `answer`, and the status of the refusal that replaced
    it (None: sent as it is)."""
    pdus = encode_message(answer, max_pdu_payload=UDP_MAX_PDU_PAYLOAD)
    if not answer.is_response:
        return pdus, None
    status = None
    if payload_size(pdus) > max_message_size:
        status = TOO_LARGE
    elif sum(map(len, pdus)) > request_size * factor and not sent_from_own_portal(
        request, peer_host, registry
    ):
        status = UDP_NOT_PROVEN
    if status is None:
        return pdus, None
    return encode_message(refusal(answer, status)), status


def sent_from_own_portal(request: Message, peer_host: str, registry: Registry) -> bool:
    """Does the request come from an address registered as a portal of the entity of its
    Source node? Only then may its UDP answer be much larger than the request."""
    if not request.attributes:
        return False
    source = request.attributes[0]
    if source.tag != Tag.ISCSI_NAME or not isinstance(source.value, str):
        return False
    node = registry.db.nodes.get(normalize_name(source.value))
    if node is None:
        return False
    try:
        address = normalize_ip(ip_address(peer_host.split("%")[0]))
    except ValueError:
        return False
    return any(normalize_ip(portal.ip) == address for portal in node.entity.portals.values())
