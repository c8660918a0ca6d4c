"""CHAP (RFC 3720 11.1.4, 8.2.1; RFC 1994), target side."""

import base64
import hashlib
from collections.abc import Callable, Iterator

import pytest

from isns_server.portal.iscsi.chap import (
    ChapAuthenticator,
    ChapCredentials,
    ChapPolicy,
    ChapState,
    chap_response,
    decode_binary,
    encode_binary,
)
from isns_server.portal.iscsi.constants import LoginStatus
from isns_server.portal.iscsi.keys import LoginError

ALICE = ChapCredentials("alice", b"alicesecret12")
TARGET = ChapCredentials("tgt", b"targetsecret12")
IDENTIFIER = 0x2A
CHALLENGE = bytes(range(16))


def fixed_random(*chunks: bytes) -> Callable[[int], bytes]:
    """A random source that hands out `chunks` in order, checking the sizes asked for."""
    queue: Iterator[bytes] = iter(chunks)

    def random_bytes(n: int) -> bytes:
        chunk = next(queue)
        assert len(chunk) == n
        return chunk

    return random_bytes


def md5(*parts: bytes) -> bytes:
    return hashlib.md5(b"".join(parts)).digest()


MUTUAL = ChapPolicy(ALICE, TARGET)


def authenticator(policy: ChapPolicy = MUTUAL) -> ChapAuthenticator:
    auth = ChapAuthenticator(
        policy.lookup, policy.mutual, random_bytes=fixed_random(bytes([IDENTIFIER]), CHALLENGE)
    )
    assert auth.challenge("5") == [
        ("CHAP_A", "5"),
        ("CHAP_I", str(IDENTIFIER)),
        ("CHAP_C", "0x" + CHALLENGE.hex()),
    ]
    return auth


def alice_response() -> str:
    return encode_binary(md5(bytes([IDENTIFIER]), ALICE.secret, CHALLENGE))


def status_of(error: pytest.ExceptionInfo[LoginError]) -> LoginStatus:
    return error.value.status


# Configuration ---------------------------------------------------------------------------


def test_secret_shorter_than_12_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 12"):
        ChapCredentials("alice", b"elevenbytes")
    assert ChapCredentials("alice", b"twelve bytes").secret == b"twelve bytes"


def test_empty_user_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        ChapCredentials("", b"alicesecret12")


def test_same_secret_both_directions_is_refused() -> None:
    with pytest.raises(ValueError, match="must differ"):
        ChapPolicy(ALICE, ChapCredentials("tgt", ALICE.secret))


def test_policy_lookup_by_chap_name() -> None:
    policy = ChapPolicy(ALICE)
    assert policy.lookup("alice") is ALICE
    assert policy.lookup("bob") is None


# Binary values (5.1) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x00ff10", b"\x00\xff\x10"),
        ("0XABcd", b"\xab\xcd"),
        ("0xfff", b"\x0f\xff"),  # n digits are (n+1)//2 bytes
        ("0b" + base64.b64encode(b"\x01\x02\x03\x04").decode(), b"\x01\x02\x03\x04"),
        ("0BAQIDBA", b"\x01\x02\x03\x04"),  # trailing "=" are optional
    ],
)
def test_decode_binary(text: str, value: bytes) -> None:
    assert decode_binary(text) == value


@pytest.mark.parametrize("text", ["", "0x", "0b", "ff", "0xgg", "0x12 34", "0b*", "0bA", "1234"])
def test_decode_binary_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        decode_binary(text)


def test_encode_binary_round_trips() -> None:
    assert encode_binary(CHALLENGE) == "0x000102030405060708090a0b0c0d0e0f"
    assert decode_binary(encode_binary(CHALLENGE)) == CHALLENGE


def test_chap_response_is_md5_of_identifier_secret_challenge() -> None:
    # RFC 1994 4.1, as libiscsi and tgt compute it
    expected = md5(b"\x2a", b"alicesecret12", CHALLENGE)
    assert chap_response(0x2A, b"alicesecret12", CHALLENGE) == expected


# Step 2: algorithm and challenge -----------------------------------------------------------


@pytest.mark.parametrize("offer", ["5", "7,5", "7,6,5", "0x5", "X-vendor,5", "5,5"])
def test_md5_is_picked_from_the_offer(offer: str) -> None:
    auth = ChapAuthenticator(ChapPolicy(ALICE).lookup)
    answers = dict(auth.challenge(offer))
    assert answers["CHAP_A"] == "5"
    assert 0 <= int(answers["CHAP_I"]) <= 255
    assert len(decode_binary(answers["CHAP_C"])) == 16
    assert auth.state is ChapState.AWAITING_RESPONSE


@pytest.mark.parametrize("offer", ["7", "6,7", "", "md5", "05x"])
def test_no_md5_in_offer_fails_authentication(offer: str) -> None:
    auth = ChapAuthenticator(ChapPolicy(ALICE).lookup)
    with pytest.raises(LoginError) as error:
        auth.challenge(offer)
    assert status_of(error) is LoginStatus.AUTHENTICATION_FAILURE


def test_challenges_are_random_by_default() -> None:
    first = dict(ChapAuthenticator(ChapPolicy(ALICE).lookup).challenge("5"))
    second = dict(ChapAuthenticator(ChapPolicy(ALICE).lookup).challenge("5"))
    assert first["CHAP_C"] != second["CHAP_C"]


# Step 4: the initiator's response ----------------------------------------------------------


def test_one_way_chap_succeeds() -> None:
    auth = authenticator(ChapPolicy(ALICE))
    assert auth.verify({"CHAP_N": "alice", "CHAP_R": alice_response()}) == []
    assert auth.state is ChapState.DONE
    assert auth.user == "alice"


def test_response_may_be_base64_and_upper_case_hex() -> None:
    digest = md5(bytes([IDENTIFIER]), ALICE.secret, CHALLENGE)
    for text in ("0b" + base64.b64encode(digest).decode(), "0X" + digest.hex().upper()):
        auth = authenticator(ChapPolicy(ALICE))
        assert auth.verify({"CHAP_N": "alice", "CHAP_R": text}) == []


AUTHENTICATION_FAILURE = LoginStatus.AUTHENTICATION_FAILURE
MISSING = LoginStatus.MISSING_PARAMETER


@pytest.mark.parametrize(
    ("keys", "status"),
    [
        ({"CHAP_N": "alice", "CHAP_R": "0x" + "00" * 16}, AUTHENTICATION_FAILURE),
        ({"CHAP_N": "alice", "CHAP_R": "0x00"}, AUTHENTICATION_FAILURE),
        ({"CHAP_N": "bob", "CHAP_R": "RESPONSE"}, AUTHENTICATION_FAILURE),
        ({"CHAP_N": "alice", "CHAP_R": "bogus"}, LoginStatus.INITIATOR_ERROR),
        ({"CHAP_N": "alice"}, MISSING),
        ({"CHAP_R": "RESPONSE"}, MISSING),
        ({"CHAP_N": "alice", "CHAP_R": "RESPONSE", "CHAP_I": "1"}, MISSING),
        ({"CHAP_N": "alice", "CHAP_R": "RESPONSE", "CHAP_C": "0x01"}, MISSING),
    ],
)
def test_bad_response(keys: dict[str, str], status: LoginStatus) -> None:
    auth = authenticator()
    keys = {key: alice_response() if value == "RESPONSE" else value for key, value in keys.items()}
    with pytest.raises(LoginError) as error:
        auth.verify(keys)
    assert status_of(error) is status
    assert auth.state is ChapState.AWAITING_RESPONSE


def test_steps_out_of_sequence() -> None:
    auth = ChapAuthenticator(ChapPolicy(ALICE).lookup)
    with pytest.raises(LoginError) as error:
        auth.verify({"CHAP_N": "alice", "CHAP_R": "0x00"})
    assert status_of(error) is LoginStatus.INITIATOR_ERROR
    auth.challenge("5")
    with pytest.raises(LoginError) as error:
        auth.challenge("5")
    assert status_of(error) is LoginStatus.INITIATOR_ERROR


# Mutual CHAP -------------------------------------------------------------------------------


def mutual_keys(identifier: str = "7", challenge: bytes = b"\x55" * 16) -> dict[str, str]:
    return {
        "CHAP_N": "alice",
        "CHAP_R": alice_response(),
        "CHAP_I": identifier,
        "CHAP_C": encode_binary(challenge),
    }


def test_mutual_chap_answers_with_target_credentials() -> None:
    auth = authenticator()
    answers = auth.verify(mutual_keys())
    response = md5(b"\x07", TARGET.secret, b"\x55" * 16)
    assert answers == [("CHAP_N", "tgt"), ("CHAP_R", encode_binary(response))]
    assert auth.state is ChapState.DONE


def test_mutual_chap_identifier_in_hex() -> None:
    answers = dict(authenticator().verify(mutual_keys(identifier="0xff")))
    assert answers["CHAP_R"] == encode_binary(md5(b"\xff", TARGET.secret, b"\x55" * 16))


def test_reflected_challenge_fails_authentication() -> None:
    # 8.2.1: the initiator hands our own challenge back to have us compute its answer
    with pytest.raises(LoginError) as error:
        authenticator().verify(mutual_keys(challenge=CHALLENGE))
    assert status_of(error) is LoginStatus.AUTHENTICATION_FAILURE


def test_mutual_chap_without_target_credentials_fails() -> None:
    with pytest.raises(LoginError) as error:
        authenticator(ChapPolicy(ALICE)).verify(mutual_keys())
    assert status_of(error) is LoginStatus.AUTHENTICATION_FAILURE


def test_shared_secret_from_a_lookup_fails() -> None:
    # A lookup other than ChapPolicy's could hand out the target's own secret.
    same = ChapCredentials("alice", TARGET.secret)
    auth = ChapAuthenticator(
        lambda user: same, TARGET, random_bytes=fixed_random(bytes([IDENTIFIER]), CHALLENGE)
    )
    auth.challenge("5")
    response = encode_binary(md5(bytes([IDENTIFIER]), TARGET.secret, CHALLENGE))
    with pytest.raises(LoginError) as error:
        auth.verify({"CHAP_N": "alice", "CHAP_R": response})
    assert status_of(error) is LoginStatus.AUTHENTICATION_FAILURE


@pytest.mark.parametrize(
    ("identifier", "challenge"),
    [("256", b"\x01"), ("x", b"\x01"), ("-1", b"\x01"), ("1", bytes(1025))],
)
def test_malformed_mutual_challenge_is_initiator_error(identifier: str, challenge: bytes) -> None:
    with pytest.raises(LoginError) as error:
        authenticator().verify(mutual_keys(identifier, challenge))
    assert status_of(error) is LoginStatus.INITIATOR_ERROR


def test_initiator_is_checked_before_answering_its_challenge() -> None:
    keys = mutual_keys() | {"CHAP_R": "0x" + "00" * 16}
    with pytest.raises(LoginError) as error:
        authenticator().verify(keys)
    assert status_of(error) is LoginStatus.AUTHENTICATION_FAILURE
