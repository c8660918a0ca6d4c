"""Hypothesis strategies for PDUs, derived from each class's declared BHS layout."""

from dataclasses import fields
from typing import Any

from hypothesis import strategies as st

from isns_server.portal.iscsi.pdu import PDU_CLASSES, Ahs, Pdu, Wire

ALL_PDU_CLASSES = sorted(PDU_CLASSES.values(), key=lambda cls: cls.OPCODE)


def _field_values(wire: Wire) -> st.SearchStrategy[Any]:
    if wire.flag:
        return st.booleans()
    if wire.mask:
        return st.integers(0, wire.mask >> ((wire.mask & -wire.mask).bit_length() - 1))
    if wire.octets:
        return st.binary(min_size=wire.size, max_size=wire.size)
    return st.integers(0, (1 << (8 * wire.size)) - 1)


def pdus_of(cls: type[Pdu], max_data: int = 300) -> st.SearchStrategy[Pdu]:
    own = {f.name: _field_values(f.metadata["wire"]) for f in fields(cls) if not f.kw_only}
    ahs = st.lists(st.builds(Ahs, st.integers(0, 255), st.binary(max_size=40)), max_size=3).map(
        tuple
    )
    return st.builds(cls, **own, ahs=ahs, data=st.binary(max_size=max_data))


any_pdu = st.one_of([pdus_of(cls) for cls in ALL_PDU_CLASSES])
