"""What the server says in return (issue 12 item 3): repeated query attributes asked once,
answers within max_message_size or refused with a status."""

from isns_server.isnsp import Attribute, FunctionId, NodeType, Status, Tag, request, response
from isns_server.isnsp.codec import StreamDecoder
from isns_server.isnsp.messages import DELIMITER
from isns_server.service.answer_limits import bounded_stream_answer, collapse_repeats

SOURCE = Attribute(Tag.ISCSI_NAME, "iqn.2026-11.org.example:admin")
NAME_KEY, TYPE = Attribute(Tag.ISCSI_NAME), Attribute(Tag.ISCSI_NODE_TYPE)


def test_repeated_keys_and_operating_attributes_of_a_query_are_asked_once() -> None:
    query = request(
        FunctionId.DEV_ATTR_QRY, 1, SOURCE, (NAME_KEY,) * 1000, (TYPE, NAME_KEY, TYPE) * 500
    )
    collapsed = collapse_repeats(query)
    assert collapsed.attributes == (SOURCE, NAME_KEY, DELIMITER, TYPE, NAME_KEY)
    assert (collapsed.function, collapsed.xid, collapsed.flags) == (
        query.function,
        query.xid,
        query.flags,
    )


def test_a_query_without_repeats_and_a_registration_are_left_alone() -> None:
    query = request(FunctionId.DEV_ATTR_QRY, 1, SOURCE, (NAME_KEY,), (TYPE,))
    assert collapse_repeats(query) is query
    # Registrations repeat tags on purpose (one iSCSI Name per node).
    node = Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET))
    registration = request(FunctionId.DEV_ATTR_REG, 2, SOURCE, (), (node, node))
    assert collapse_repeats(registration) is registration


def test_an_answer_over_max_message_size_is_refused_with_invalid_query() -> None:
    query = request(FunctionId.DEV_ATTR_QRY, 3, SOURCE, (NAME_KEY,), (NAME_KEY,))
    names = tuple(Attribute(Tag.ISCSI_NAME, f"iqn.2026-11.org.example:t{i:05}") for i in range(999))
    answer = response(query, Status.SUCCESSFUL, (NAME_KEY,), names)
    pdus, whole = bounded_stream_answer(answer, max_message_size=1 << 20)
    assert whole
    pdus, whole = bounded_stream_answer(answer, max_message_size=4096)
    assert not whole
    decoder = StreamDecoder()
    for pdu in pdus:
        decoder.receive_data(pdu)
    refusal = decoder.next_message()
    assert refusal is not None
    assert (refusal.function, refusal.xid, refusal.status, refusal.attributes) == (
        FunctionId.DEV_ATTR_QRY_RSP,
        3,
        Status.INVALID_QUERY,
        (),
    )
