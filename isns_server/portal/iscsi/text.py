"""Key=value text of Login and Text PDUs (RFC 3720 5.1, 5.2, 10.10.5).

Text is UTF-8 `key=value` pairs, each followed by one NUL. A sequence of PDUs with
the C bit set, ended by one without it, forms one logical-text-data-segment (LTDS)
in which pairs may straddle PDU boundaries: `TextAccumulator` joins it, `split_text`
cuts one for sending.
"""

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import TextFormatError

MAX_KEY_LENGTH = 63  # 5.1 standard-label
MAX_VALUE_LENGTH = 255  # 5.1: simple-values, and each item of a list-of-values
MAX_LONG_VALUE_LENGTH = 8192  # large-binary-values: the 8192 bytes 5.1 guarantees per sequence
# 5.1: at least 8192 bytes per negotiation sequence, 64 KiB where long authentication
# items are in use; taking the larger refuses no conforming peer and bounds what we buffer.
DEFAULT_MAX_TEXT_LENGTH = 64 * 1024

# Keys whose values are large-binary-values (11.1); CHAP_C and CHAP_R may carry
# 1024 binary bytes, 2050 characters as a hex-constant.
LONG_VALUE_KEYS = frozenset(
    {
        "CHAP_C",
        "CHAP_R",
        "KRB_AP_REQ",
        "KRB_AP_REP",
        "SPKM_REQ",
        "SPKM_ERROR",
        "SPKM_REP_TI",
        "SPKM_REP_IT",
        "SRP_s",
        "SRP_A",
        "SRP_B",
        "SRP_M",
        "SRP_HM",
    }
)
# Keys whose values are a list-of-values: the 255-byte limit applies to each item.
LIST_KEYS = frozenset({"HeaderDigest", "DataDigest", "AuthMethod", "CHAP_A", "SRP_GROUP"})

# A standard-label (5.1), or a public extension key "X#label" (12.22): private
# extension keys ("X-com.example...") are already standard-labels.
_KEY = re.compile(rb"[A-Z][A-Za-z0-9.\-+@_]*|X#[A-Za-z0-9.\-+@_]+")


@dataclass(frozen=True, slots=True)
class KeyValuePairs:
    """Decoded text: the pairs in the order they came."""

    pairs: tuple[tuple[str, str], ...] = ()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of the first `key`."""
        return next((value for name, value in self.pairs if name == key), default)

    @property
    def repeated(self) -> tuple[str, ...]:
        """Keys given more than once: 5.3/5.4 make that an error for most keys."""
        counts = Counter(name for name, _ in self.pairs)
        return tuple(name for name, count in counts.items() if count > 1)


def decode_text(data: bytes | bytearray | memoryview) -> KeyValuePairs:
    """Decode a complete LTDS; raises TextFormatError."""
    text = bytes(data)
    if not text:
        return KeyValuePairs()
    if text[-1] != 0:
        raise TextFormatError("text does not end with a NUL")
    pairs: list[tuple[str, str]] = []
    for item in text[:-1].split(b"\0"):
        if not item:  # a stray extra NUL separates nothing: tolerated
            continue
        key, equals, value = item.partition(b"=")
        if not equals:
            raise TextFormatError(f"{item[:MAX_KEY_LENGTH]!r} is not key=value")
        pairs.append(_checked(key, value))
    return KeyValuePairs(tuple(pairs))


def encode_text(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Encode pairs in order; raises TextFormatError for a pair we must not send."""
    out = bytearray()
    for key, value in pairs:
        raw_key, raw_value = key.encode(), value.encode()
        if b"\0" in raw_value:
            raise TextFormatError(f"value of {key} contains a NUL")
        _checked(raw_key, raw_value)
        out += raw_key + b"=" + raw_value + b"\0"
    return bytes(out)


def _checked(key: bytes, value: bytes) -> tuple[str, str]:
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise TextFormatError(f"invalid key name {key[: MAX_KEY_LENGTH + 1]!r}")
    name = key.decode("ascii")
    if name in LIST_KEYS and any(len(item) > MAX_VALUE_LENGTH for item in value.split(b",")):
        raise TextFormatError(f"{name}: list item longer than {MAX_VALUE_LENGTH} bytes")
    long_value = name in LONG_VALUE_KEYS or name in LIST_KEYS
    limit = MAX_LONG_VALUE_LENGTH if long_value else MAX_VALUE_LENGTH
    if len(value) > limit:
        raise TextFormatError(f"{name}: value longer than {limit} bytes")
    try:
        return name, value.decode()
    except UnicodeDecodeError:
        raise TextFormatError(f"{name}: value is not UTF-8") from None


class TextAccumulator:
    """Joins the data segments of a Login or Text sequence into one LTDS (5.1, 10.10.2).

    Feed each PDU's data with its C bit; the pairs come out, all at once, with the
    piece whose C bit is clear.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_TEXT_LENGTH) -> None:
        self.max_length = max_length
        self._text = bytearray()
        self._continuing = False

    @property
    def pending(self) -> bool:
        """True between a PDU with the C bit and the one that ends the LTDS."""
        return self._continuing

    def feed(self, data: bytes | bytearray | memoryview, continue_: bool) -> KeyValuePairs | None:
        if len(self._text) + len(data) > self.max_length:
            self.reset()
            raise TextFormatError(f"text longer than {self.max_length} bytes")
        self._text += data
        self._continuing = continue_
        if continue_:
            return None
        text = bytes(self._text)
        self.reset()
        return decode_text(text)

    def reset(self) -> None:
        """Forget a partial LTDS (a negotiation reset, 5.2)."""
        self._text.clear()
        self._continuing = False


def split_text(text: bytes, max_length: int) -> list[bytes]:
    """Cut encoded text into data segments of at most `max_length` bytes.

    Send every chunk but the last with the C bit set. Chunks end after a NUL whenever
    a whole pair fits, so most PDUs carry whole pairs; a pair longer than `max_length`
    is cut mid-pair, which the C bit allows. Empty text gives one empty chunk.
    """
    if max_length < 1:
        raise ValueError("max_length must be positive")
    chunks: list[bytes] = []
    start = 0
    while len(text) - start > max_length:
        cut = text.rfind(b"\0", start, start + max_length) + 1
        if cut <= start:
            cut = start + max_length
        chunks.append(text[start:cut])
        start = cut
    chunks.append(text[start:])
    return chunks
