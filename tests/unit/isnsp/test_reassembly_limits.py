"""The TCP decoder's process-wide reassembly budget and its reassembly timeout (issue 12
item 2): refusals carry the RFC 4171 status to answer, the rest of a refused message is
skipped without more errors, and every byte taken from the budget is given back."""

import pytest

from isns_server.isnsp import (
    Attribute,
    FunctionId,
    Message,
    MessageFormatError,
    Status,
    Tag,
    request,
)
from isns_server.isnsp.codec import ReassemblyBudget, StreamDecoder, encode_message

NAME = "iqn.2026-11.org.example:limits"


def big_query(xid: int, size: int) -> list[bytes]:
    """A DevAttrQry of about `size` payload bytes, in PDUs of 4 KiB."""
    source = Attribute(Tag.ISCSI_NAME, NAME)
    wanted = (Attribute(Tag.ISCSI_NODE_TYPE),) * ((size - 64) // 8)
    message = request(FunctionId.DEV_ATTR_QRY, xid, source, (source,), wanted)
    return encode_message(message, max_pdu_payload=4096)


def feed(
    decoder: StreamDecoder, pdus: list[bytes], now: float = 0.0
) -> list[Message | MessageFormatError]:
    """Messages and errors, in order, from feeding `pdus`."""
    out: list[Message | MessageFormatError] = []
    for pdu in pdus:
        decoder.receive_data(pdu)
        while True:
            try:
                message = decoder.next_message(now)
            except MessageFormatError as error:
                out.append(error)
                continue
            if message is None:
                break
            out.append(message)
    return out


def test_over_the_shared_budget_is_busy_and_the_rest_is_skipped() -> None:
    budget = ReassemblyBudget(40_000)
    first, second = StreamDecoder(budget=budget), StreamDecoder(budget=budget)
    held = big_query(1, 32_000)
    assert feed(first, held[:-1]) == []  # 28 KiB of 32 held, unfinished
    assert budget.used == 4096 * (len(held) - 1)

    refused = big_query(2, 32_000)
    out = feed(second, refused)
    (error,) = out  # one answer for the whole message, however many PDUs follow
    assert isinstance(error, MessageFormatError)
    assert (error.status, error.function, error.xid, error.fatal) == (
        Status.BUSY,
        FunctionId.DEV_ATTR_QRY,
        2,
        False,
    )
    # The connection goes on: a small message right after is decoded.
    (message,) = feed(second, big_query(3, 1000))
    assert isinstance(message, Message) and message.xid == 3

    # The held message completes; every byte goes back to the budget.
    (message,) = feed(first, held[-1:])
    assert isinstance(message, Message) and message.xid == 1
    assert budget.used == 0
    (message,) = feed(second, big_query(4, 32_000))
    assert isinstance(message, Message) and message.xid == 4
    assert budget.used == 0


def test_a_closed_connection_gives_its_unfinished_messages_back() -> None:
    budget = ReassemblyBudget(1 << 20)
    decoder = StreamDecoder(budget=budget)
    feed(decoder, big_query(1, 20_000)[:-1] + big_query(2, 20_000)[:-1])
    assert budget.used > 0
    decoder.close()
    assert budget.used == 0


def test_reassembly_timeout_answers_message_format_error_and_skips_the_rest() -> None:
    budget = ReassemblyBudget(1 << 20)
    decoder = StreamDecoder(budget=budget, reassembly_timeout=30.0)
    pdus = big_query(5, 20_000)
    assert feed(decoder, pdus[:2], now=100.0) == []
    assert decoder.reassembly_deadline == pytest.approx(130.0)
    assert decoder.expire(129.9) == []
    (error,) = decoder.expire(130.0)
    assert (error.status, error.xid, error.fatal) == (Status.MESSAGE_FORMAT_ERROR, 5, False)
    assert "30 s" in str(error)
    assert decoder.reassembly_deadline is None and budget.used == 0
    assert feed(decoder, pdus[2:], now=131.0) == []  # the late rest: skipped, no error
    (message,) = feed(decoder, big_query(6, 20_000), now=132.0)
    assert isinstance(message, Message) and message.xid == 6


def test_without_budget_or_timeout_nothing_expires() -> None:
    decoder = StreamDecoder()
    feed(decoder, big_query(1, 20_000)[:-1])
    assert decoder.reassembly_deadline is None
    assert decoder.expire(1e9) == []
