"""A raw iSCSI initiator over a blocking socket, for tests that need to send exactly the
bytes they choose (bad input) or check exactly what comes back."""

import itertools
import socket
from typing import Any

from isns_server.portal.iscsi.codec import PduReader, encode_pdu
from isns_server.portal.iscsi.constants import LoginStage
from isns_server.portal.iscsi.pdu import LoginRequest, LoginResponse, Pdu
from isns_server.portal.iscsi.text import decode_text, encode_text

ISID = bytes.fromhex("400001370000")  # for a test that needs the same I_T nexus again
Pair = tuple[str, str]
_session_numbers = itertools.count()


class RawInitiator:
    def __init__(
        self, port: int, host: str = "127.0.0.1", timeout: float = 5.0, isid: bytes | None = None
    ) -> None:
        """Each initiator its own ISID unless told: the same one would reinstate the
        session of another (RFC 3720 5.3.5)."""
        self.isid = isid or bytes.fromhex("40000138") + next(_session_numbers).to_bytes(2, "big")
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = PduReader(max_recv_data_segment_length=1 << 24)
        self.digests = (False, False)

    def __enter__(self) -> "RawInitiator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, pdu: Pdu) -> None:
        self.sock.sendall(b"".join(encode_pdu(pdu, *self.digests)))

    def receive(self) -> Pdu:
        """The next PDU; raises ConnectionError when the target closed the connection."""
        while (pdu := self.reader.next_pdu()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the target")
            self.reader.receive_data(data)
        return pdu

    def closed(self) -> bool:
        """Whether the target closed the connection (after anything still unread)."""
        try:
            while True:
                self.receive()
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    def login(self, *pairs: Pair, **header: Any) -> LoginResponse:
        """One Login Request (operational stage straight to Full Feature by default)."""
        fields: dict[str, Any] = {
            "transit": True,
            "csg": LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
            "nsg": LoginStage.FULL_FEATURE_PHASE,
            "isid": self.isid,
            "itt": 1,
            "cmdsn": 1,
            "data": encode_text(pairs),
        }
        fields.update(header)
        self.send(LoginRequest(**fields))
        response = self.receive()
        assert isinstance(response, LoginResponse), response
        return response

    def enter_full_feature(self, *pairs: Pair) -> LoginResponse:
        """Log in with `pairs` (names and session type) and the digests they ask for."""
        response = self.login(*pairs)
        assert response.status == 0 and response.transit, response
        answers = dict(decode_text(response.data))
        self.digests = (
            answers.get("HeaderDigest") == "CRC32C",
            answers.get("DataDigest") == "CRC32C",
        )
        self.reader.header_digest, self.reader.data_digest = self.digests
        return response


def texts(pdu: Pdu) -> list[Pair]:
    return list(decode_text(pdu.data))
