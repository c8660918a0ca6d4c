"""Typed SLPv2 messages (RFC 2608 8, 10): what the codec produces and consumes.

Every message carries the header fields (xid, language, flags, extensions). Body fields
are declared in wire order. String lists (scopes, tags, SPIs, service types) are held
unescaped; attribute lists, URLs and predicates are held as the exact wire text because
authentication blocks sign those bytes (RFC 2608 9.2.1) and a DA must hand them back
unchanged (10.4). Replies with a nonzero error code carry their other fields empty (RFC
2608 7 lets a sender stop after the code; deployed readers do not); an error code the RFC
does not name is kept as a plain int.
"""

from dataclasses import dataclass
from typing import ClassVar

from .constants import MANDATORY_EXTENSIONS, ErrorCode, Flags, FunctionId


@dataclass(frozen=True, slots=True)
class AuthBlock:
    """RFC 2608 9.2, kept opaque: the codec frames it; verifying it is someone else's job."""

    bsd: int  # Block Structure Descriptor; 0x0002 is DSA with SHA-1
    timestamp: int  # expiry, seconds since 1970 modulo 2**32
    spi: str  # SLP SPI string
    data: bytes  # Structured Authentication Block


@dataclass(frozen=True, slots=True)
class UrlEntry:
    """RFC 2608 4.3."""

    url: str
    lifetime: int  # seconds, 0..0xFFFF
    auth_blocks: tuple[AuthBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Extension:
    """RFC 2608 9.1: one element of the next-extension-offset chain."""

    extension_id: int
    data: bytes = b""

    @property
    def mandatory(self) -> bool:
        return self.extension_id in MANDATORY_EXTENSIONS


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    function: ClassVar[FunctionId]

    xid: int = 0
    language: str = "en"
    flags: Flags = Flags.NONE
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvRqst(Message):
    """RFC 2608 8.1."""

    function: ClassVar[FunctionId] = FunctionId.SRV_RQST
    pr_list: tuple[str, ...] = ()
    service_type: str
    scopes: tuple[str, ...] = ()
    predicate: str = ""  # LDAPv3 filter text, checked on parse; see predicate.parse_predicate
    spi: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvRply(Message):
    """RFC 2608 8.2."""

    function: ClassVar[FunctionId] = FunctionId.SRV_RPLY
    error_code: ErrorCode | int = ErrorCode.OK
    url_entries: tuple[UrlEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvReg(Message):
    """RFC 2608 8.3. FRESH in `flags` marks a new (not incremental) registration."""

    function: ClassVar[FunctionId] = FunctionId.SRV_REG
    url_entry: UrlEntry
    service_type: str
    scopes: tuple[str, ...] = ()
    attr_list: str = ""
    auth_blocks: tuple[AuthBlock, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvDeReg(Message):
    """RFC 2608 10.6."""

    function: ClassVar[FunctionId] = FunctionId.SRV_DEREG
    scopes: tuple[str, ...] = ()
    url_entry: UrlEntry
    tag_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvAck(Message):
    """RFC 2608 8.4."""

    function: ClassVar[FunctionId] = FunctionId.SRV_ACK
    error_code: ErrorCode | int = ErrorCode.OK


@dataclass(frozen=True, slots=True, kw_only=True)
class AttrRqst(Message):
    """RFC 2608 10.3. `url` is a full URL or a service type."""

    function: ClassVar[FunctionId] = FunctionId.ATTR_RQST
    pr_list: tuple[str, ...] = ()
    url: str
    scopes: tuple[str, ...] = ()
    tag_list: tuple[str, ...] = ()
    spi: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttrRply(Message):
    """RFC 2608 10.4."""

    function: ClassVar[FunctionId] = FunctionId.ATTR_RPLY
    error_code: ErrorCode | int = ErrorCode.OK
    attr_list: str = ""
    auth_blocks: tuple[AuthBlock, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DAAdvert(Message):
    """RFC 2608 8.5."""

    function: ClassVar[FunctionId] = FunctionId.DA_ADVERT
    error_code: ErrorCode | int = ErrorCode.OK
    boot_timestamp: int = 0  # DA Stateless Boot Timestamp; 0 means the DA is going down
    url: str = ""
    scopes: tuple[str, ...] = ()
    attr_list: str = ""
    spi_list: tuple[str, ...] = ()
    auth_blocks: tuple[AuthBlock, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvTypeRqst(Message):
    """RFC 2608 10.1. naming_authority: None asks for all, "" for IANA types only."""

    function: ClassVar[FunctionId] = FunctionId.SRV_TYPE_RQST
    pr_list: tuple[str, ...] = ()
    naming_authority: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvTypeRply(Message):
    """RFC 2608 10.2."""

    function: ClassVar[FunctionId] = FunctionId.SRV_TYPE_RPLY
    error_code: ErrorCode | int = ErrorCode.OK
    service_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SAAdvert(Message):
    """RFC 2608 8.6."""

    function: ClassVar[FunctionId] = FunctionId.SA_ADVERT
    url: str
    scopes: tuple[str, ...] = ()
    attr_list: str = ""
    auth_blocks: tuple[AuthBlock, ...] = ()


MESSAGE_TYPES: dict[FunctionId, type[Message]] = {
    cls.function: cls
    for cls in (
        SrvRqst,
        SrvRply,
        SrvReg,
        SrvDeReg,
        SrvAck,
        AttrRqst,
        AttrRply,
        DAAdvert,
        SrvTypeRqst,
        SrvTypeRply,
        SAAdvert,
    )
}
