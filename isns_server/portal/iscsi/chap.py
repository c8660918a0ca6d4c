"""CHAP with MD5, target side, one-way and mutual (RFC 3720 11.1.4 and 8.2.1; RFC 1994).

The target picks the algorithm and sends a challenge (step 2), then checks the
initiator's response and, when the initiator challenges it in turn, answers (step 4).
Keys that break a step are an initiator error or a missing parameter; a wrong
response, a reflected challenge or an unsupported algorithm is an authentication
failure (8.2).
"""

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from .constants import LoginStatus
from .keys import LoginError, parse_numerical

CHAP_MD5 = 5  # 11.1.4: the one algorithm every implementation has
MIN_SECRET_LENGTH = 12  # 8.2.1: at least 96 bits, or IPsec (which we do not do)
CHALLENGE_LENGTH = 16  # bytes; as long as the MD5 digest
MAX_BINARY_LENGTH = 1024  # 11.1.4: C and R are at most 1024 bytes

RandomBytes = Callable[[int], bytes]
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    """A CHAP name and secret (CHAP_N and the shared secret of RFC 1994)."""

    user: str
    secret: bytes

    def __post_init__(self) -> None:
        if not self.user:
            raise ValueError("a CHAP user name must not be empty")
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the CHAP secret of {self.user!r} is {len(self.secret)} bytes;"
                f" RFC 3720 8.2.1 requires at least {MIN_SECRET_LENGTH}"
            )


@dataclass(frozen=True, slots=True)
class ChapPolicy:
    """CHAP required of initiators: who they must be and, for mutual CHAP, who we are."""

    initiator: ChapCredentials
    mutual: ChapCredentials | None = None

    def __post_init__(self) -> None:
        if self.mutual is not None and self.mutual.secret == self.initiator.secret:
            raise ValueError("8.2.1: the mutual CHAP secret must differ from the initiator's")

    def lookup(self, user: str) -> ChapCredentials | None:
        return self.initiator if user == self.initiator.user else None


SecretLookup = Callable[[str], ChapCredentials | None]  # CHAP_N -> the credentials to check


def decode_binary(text: str) -> bytes:
    """A hex-constant or base64-constant (5.1) as bytes; ValueError if it is neither."""
    prefix, digits = text[:2], text[2:]
    if prefix in ("0x", "0X") and _HEX_DIGITS.fullmatch(digits):
        # An odd number of digits has a leading zero nibble: n digits are (n+1)//2 bytes.
        return bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0"))
    if prefix in ("0b", "0B") and digits:
        try:  # trailing "=" are optional in iSCSI
            return base64.b64decode(digits + "=" * (-len(digits) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{text!r}: {exc}") from None
    raise ValueError(f"{text!r} is not a binary value")


def encode_binary(data: bytes) -> str:
    return "0x" + data.hex()


def chap_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 1994 4.1: MD5 over the identifier, the secret and the challenge."""
    return hashlib.md5(bytes([identifier]) + secret + challenge).digest()


class ChapState(Enum):
    AWAITING_ALGORITHM = "awaiting CHAP_A"
    AWAITING_RESPONSE = "awaiting CHAP_N and CHAP_R"
    DONE = "authenticated"


class ChapAuthenticator:
    """The target's side of one CHAP exchange.

    `lookup` gives the credentials an initiator must prove for a CHAP_N; `mutual` are
    the target's own, used when the initiator asks the target to authenticate itself.
    """

    def __init__(
        self,
        lookup: SecretLookup,
        mutual: ChapCredentials | None = None,
        *,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self._lookup = lookup
        self._mutual = mutual
        self._random_bytes = random_bytes
        self._identifier = 0
        self._challenge = b""
        self.state = ChapState.AWAITING_ALGORITHM
        self.user: str | None = None  # CHAP_N once authenticated

    def challenge(self, algorithms: str) -> list[tuple[str, str]]:
        """Step 2: answer CHAP_A=<A1,A2...> with the algorithm, identifier and challenge."""
        if self.state is not ChapState.AWAITING_ALGORITHM:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP_A out of sequence")
        # 5.2.1: values not understood are ignored; 11.1.4: none supported fails the login
        if CHAP_MD5 not in (parse_numerical(item) for item in algorithms.split(",")):
            raise LoginError(
                LoginStatus.AUTHENTICATION_FAILURE, f"CHAP_A={algorithms} does not offer MD5"
            )
        self._identifier = self._random_bytes(1)[0]
        self._challenge = self._random_bytes(CHALLENGE_LENGTH)
        self.state = ChapState.AWAITING_RESPONSE
        return [
            ("CHAP_A", str(CHAP_MD5)),
            ("CHAP_I", str(self._identifier)),
            ("CHAP_C", encode_binary(self._challenge)),
        ]

    def verify(self, keys: Mapping[str, str]) -> list[tuple[str, str]]:
        """Step 4: check CHAP_N/CHAP_R; answer a mutual CHAP_I/CHAP_C with our CHAP_N/R."""
        if self.state is not ChapState.AWAITING_RESPONSE:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP response out of sequence")
        # 8.2: a missing key is "Missing Parameter", so that omitting CHAP_R cannot turn
        # the target into an oracle for a reflection attack.
        missing = [key for key in ("CHAP_N", "CHAP_R") if key not in keys]
        if ("CHAP_I" in keys) != ("CHAP_C" in keys):
            missing.append("CHAP_C" if "CHAP_I" in keys else "CHAP_I")
        if missing:
            raise LoginError(LoginStatus.MISSING_PARAMETER, f"{', '.join(missing)} missing")
        user = keys["CHAP_N"]
        response = _binary(keys, "CHAP_R")
        credentials = self._lookup(user)
        if credentials is None:
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, f"unknown CHAP user {user!r}")
        if self._mutual is not None and credentials.secret == self._mutual.secret:
            raise LoginError(  # 8.2.1: one secret for both directions invites reflection
                LoginStatus.AUTHENTICATION_FAILURE, "initiator and target share a CHAP secret"
            )
        expected = chap_response(self._identifier, credentials.secret, self._challenge)
        if not hmac.compare_digest(response, expected):
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, f"wrong CHAP_R for {user!r}")
        self.user = user
        self.state = ChapState.DONE
        if "CHAP_I" not in keys:
            return []
        return self._authenticate_target(keys["CHAP_I"], _binary(keys, "CHAP_C"))

    def _authenticate_target(self, identifier_text: str, challenge: bytes) -> list[tuple[str, str]]:
        if self._mutual is None:
            raise LoginError(
                LoginStatus.AUTHENTICATION_FAILURE, "mutual CHAP requested but not configured"
            )
        identifier = parse_numerical(identifier_text)
        if identifier is None or identifier > 0xFF:
            raise LoginError(LoginStatus.INITIATOR_ERROR, f"CHAP_I={identifier_text} invalid")
        if not 0 < len(challenge) <= MAX_BINARY_LENGTH:
            raise LoginError(LoginStatus.INITIATOR_ERROR, "CHAP_C of invalid length")
        if challenge == self._challenge:
            # 8.2.1: the initiator reflected our challenge to have us compute its answer
            raise LoginError(LoginStatus.AUTHENTICATION_FAILURE, "CHAP_C reflects our challenge")
        response = chap_response(identifier, self._mutual.secret, challenge)
        return [("CHAP_N", self._mutual.user), ("CHAP_R", encode_binary(response))]


def _binary(keys: Mapping[str, str], key: str) -> bytes:
    try:
        return decode_binary(keys[key])
    except ValueError as exc:
        raise LoginError(LoginStatus.INITIATOR_ERROR, f"{key}: {exc}") from None
