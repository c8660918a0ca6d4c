"""SLPv2 wire codec (RFC 2608): sans-IO parse/build, attribute lists and predicates.

Bytes in, frozen dataclasses out; no sockets, no clocks. The directory agent sits on top.
"""

from .attributes import Attribute, AttrValue, format_attr_list, parse_attr_list
from .codec import (
    build_error_reply,
    build_message,
    error_reply,
    fit_to_budget,
    message_length,
    parse_message,
)
from .constants import CONFIG_MTU, DEFAULT_PORT, MULTICAST_ADDRESS, ErrorCode, Flags, FunctionId
from .errors import SlpParseError
from .messages import (
    AttrRply,
    AttrRqst,
    AuthBlock,
    DAAdvert,
    Extension,
    Message,
    SAAdvert,
    SrvAck,
    SrvDeReg,
    SrvReg,
    SrvRply,
    SrvRqst,
    SrvTypeRply,
    SrvTypeRqst,
    UrlEntry,
)
from .predicate import Predicate, parse_predicate, tag_matches
from .strings import comparison_key, service_type_of

__all__ = [
    "CONFIG_MTU",
    "DEFAULT_PORT",
    "MULTICAST_ADDRESS",
    "AttrRply",
    "AttrRqst",
    "AttrValue",
    "Attribute",
    "AuthBlock",
    "DAAdvert",
    "ErrorCode",
    "Extension",
    "Flags",
    "FunctionId",
    "Message",
    "Predicate",
    "SAAdvert",
    "SlpParseError",
    "SrvAck",
    "SrvDeReg",
    "SrvReg",
    "SrvRply",
    "SrvRqst",
    "SrvTypeRply",
    "SrvTypeRqst",
    "UrlEntry",
    "build_error_reply",
    "build_message",
    "comparison_key",
    "error_reply",
    "fit_to_budget",
    "format_attr_list",
    "message_length",
    "parse_attr_list",
    "parse_message",
    "parse_predicate",
    "service_type_of",
    "tag_matches",
]
