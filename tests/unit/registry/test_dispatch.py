"""Registry.handle: the function table, the Source attribute, response framing."""

import pytest

from isns_server.isnsp.constants import Flags, FunctionId, Status, Tag
from isns_server.isnsp.messages import DELIMITER, Attribute, Message

from .builders import ADMIN, NOW, a, call, iqn, new_registry, status


@pytest.mark.parametrize(
    "function",
    [
        FunctionId.ESI,
        FunctionId.HEARTBEAT,
        FunctionId.RQST_DOM_ID,
        FunctionId.RLSE_DOM_ID,
        FunctionId.GET_DOM_ID,
        0x0100,  # vendor-specific
        0x00FF,  # reserved
    ],
)
def test_functions_this_registry_does_not_handle(function: int) -> None:
    message = Message(function, 7, Flags.CLIENT, (Attribute(Tag.ISCSI_NAME, ADMIN),))
    outcome = new_registry().handle(message, NOW)
    assert outcome.response.status == Status.MESSAGE_NOT_SUPPORTED
    assert outcome.response.function == function | 0x8000 and outcome.response.xid == 7
    assert not outcome.dirty and not outcome.changes


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ((), Status.SOURCE_ABSENT),
        ((DELIMITER, a(Tag.ISCSI_NAME)), Status.SOURCE_ABSENT),
        ((a(Tag.ISCSI_NAME),), Status.SOURCE_ABSENT),  # zero-length
        ((a(Tag.ENTITY_IDENTIFIER, "e"),), Status.SOURCE_ABSENT),
        ((a(Tag.FC_PORT_NAME_WWPN, 1),), Status.ATTRIBUTE_NOT_IMPLEMENTED),
    ],
)
def test_the_source_attribute(attributes: tuple[Attribute, ...], expected: Status) -> None:
    message = Message(FunctionId.DEV_ATTR_QRY, 1, Flags.CLIENT, attributes)
    assert new_registry().handle(message, NOW).response.status == expected


def test_responses_echo_the_transaction_and_set_the_server_flag() -> None:
    outcome = call(new_registry(), FunctionId.DEV_ATTR_QRY, ADMIN, [a(Tag.ISCSI_NAME)])
    response = outcome.response
    assert response.function == FunctionId.DEV_ATTR_QRY_RSP
    assert response.flags == Flags.SERVER and response.status == Status.SUCCESSFUL


def test_source_names_are_case_insensitive() -> None:
    registry = new_registry()
    assert status(call(registry, FunctionId.DEV_ATTR_QRY, ADMIN.upper(), [])) == Status.SUCCESSFUL
    assert status(call(registry, FunctionId.DEV_ATTR_QRY, iqn("x"), [])) == Status.SOURCE_UNKNOWN
