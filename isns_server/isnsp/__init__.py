"""iSNSP (RFC 4171) wire codec: sans-IO, bytes in and typed messages out."""

from .attributes import (
    ATTRIBUTE_SPECS,
    AttributeSpec,
    ValueKind,
    decode_attributes,
    encode_attribute,
    encode_attributes,
    spec_for,
)
from .codec import DatagramDecoder, StreamDecoder, encode_message
from .constants import (
    DEFAULT_PORT,
    DDFeatures,
    DDSetStatus,
    EntityProtocol,
    Flags,
    FunctionId,
    NodeType,
    ScnBitmap,
    Status,
    Tag,
)
from .errors import MessageFormatError
from .messages import (
    DELIMITER,
    Attribute,
    AttrValue,
    IPAddress,
    Message,
    PortNumber,
    request,
    response,
)
from .pdu import MAX_PDU_PAYLOAD, PduHeader

__all__ = [
    "ATTRIBUTE_SPECS",
    "DEFAULT_PORT",
    "DELIMITER",
    "MAX_PDU_PAYLOAD",
    "AttrValue",
    "Attribute",
    "AttributeSpec",
    "DDFeatures",
    "DDSetStatus",
    "DatagramDecoder",
    "EntityProtocol",
    "Flags",
    "FunctionId",
    "IPAddress",
    "Message",
    "MessageFormatError",
    "NodeType",
    "PduHeader",
    "PortNumber",
    "ScnBitmap",
    "Status",
    "StreamDecoder",
    "Tag",
    "ValueKind",
    "decode_attributes",
    "encode_attribute",
    "encode_attributes",
    "encode_message",
    "request",
    "response",
    "spec_for",
]
