"""Zoning by discovery domains, seen through isnsadm: each initiator lists exactly what it
shares an enabled DD with, a control node lists everything, a disabled DD set hides its DDs.
"""

import re
from pathlib import Path

import pytest

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import DDSetStatus, FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute

from ..conftest import ADMIN
from ..peers import require
from ..processes import OurServer, isnsadm

pytestmark = pytest.mark.interop

PREFIX = "iqn.2026-11.org.example.test:"
T1, T2, T3 = (PREFIX + name for name in ("t1", "t2", "t3"))
I1, I2, I3 = (PREFIX + name for name in ("i1", "i2", "i3"))


class Admin:
    def __init__(self, server: OurServer, workdir: Path) -> None:
        self.program = require("isnsadm")
        self.server = server
        self.workdir = workdir

    def run(self, source: str, *args: str) -> str:
        code, out = isnsadm(self.program, self.server.port, source, *args, workdir=self.workdir)
        assert code == 0, f"isnsadm {' '.join(args)} as {source} failed:\n{out}"
        return out

    def visible(self, source: str) -> set[str]:
        return set(re.findall(r'iSCSI name = "([^"]+)"', self.run(source, "--list", "nodes")))


async def dds_reg(port: int, *keys: Attribute, operating: tuple[Attribute, ...]) -> int:
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        answer = await isns.call(
            FunctionId.DDS_REG, Attribute(Tag.ISCSI_NAME, ADMIN), keys, operating
        )
    assert answer.status == Status.SUCCESSFUL, answer
    (dds_id,) = [a.value for a in answer.attributes if a.tag == Tag.DD_SET_ID][:1]
    assert isinstance(dds_id, int)
    return dds_id


async def test_initiators_see_exactly_their_discovery_domains(
    our_server: OurServer, tmp_path: Path
) -> None:
    our_server.start()
    admin = Admin(our_server, tmp_path)
    for n, target in enumerate((T1, T2, T3)):
        admin.run(
            target, "--register", f"entity=stor{n}", f"portal=127.0.1.{n}:3260", f"target={target}"
        )
    for n, initiator in enumerate((I1, I2, I3)):
        admin.run(initiator, "--register", f"entity=host{n}", f"initiator={initiator}")
    out = admin.run(
        ADMIN, "--dd-register", "dd-name=dd-a", f"dd-member-name={T1}", f"dd-member-name={I1}"
    )
    registered = re.search(r"DD ID = (\d+)", out)
    assert registered is not None, out
    dd_a = int(registered.group(1))
    admin.run(
        ADMIN, "--dd-register", "dd-name=dd-b", f"dd-member-name={T2}", f"dd-member-name={I2}"
    )

    assert admin.visible(I1) == {I1, T1}
    assert admin.visible(I2) == {I2, T2}
    assert admin.visible(I3) == {I3, T3}  # the default DD: nodes in no DD
    assert admin.visible(ADMIN) == {T1, T2, T3, I1, I2, I3}
    code, out = isnsadm(
        admin.program, our_server.port, I1, "--query", f"iscsi-name={T2}", workdir=tmp_path
    )
    assert T2 not in out, out
    assert "No such entry" in out or code != 0, out

    # A DD set holding dd-a, disabled: dd-a stops zoning anything; dd-b is in no set, still on.
    dds = await dds_reg(
        our_server.port,
        operating=(
            Attribute(Tag.DD_SET_SYMBOLIC_NAME, "set-a"),
            Attribute(Tag.DD_SET_STATUS, int(DDSetStatus.DISABLED)),
            Attribute(Tag.DD_ID, dd_a),
        ),
    )
    assert admin.visible(I1) == {I1}
    assert admin.visible(I2) == {I2, T2}
    await dds_reg(
        our_server.port,
        Attribute(Tag.DD_SET_ID, dds),
        operating=(Attribute(Tag.DD_SET_STATUS, int(DDSetStatus.ENABLED)),),
    )
    assert admin.visible(I1) == {I1, T1}

    # Zoning survives a restart: it is part of the durable registry.
    our_server.stop()
    our_server.start()
    assert admin.visible(I1) == {I1, T1}
    assert admin.visible(I2) == {I2, T2}


def test_discovery_domains_from_the_configuration_zone_from_startup(
    our_server: OurServer, tmp_path: Path
) -> None:
    our_server.configure(discovery_domains=[{"name": "dd-prod", "members": [T1, I1]}])
    our_server.start()
    admin = Admin(our_server, tmp_path)
    admin.run(T1, "--register", "entity=stor1", "portal=127.0.1.1:3260", f"target={T1}")
    for n, initiator in enumerate((I1, I2)):
        admin.run(initiator, "--register", f"entity=host{n}", f"initiator={initiator}")
    assert admin.visible(I1) == {I1, T1}
    assert admin.visible(I2) == {I2}
    our_server.stop()
    our_server.start()  # applied again: still one dd-prod, same zoning
    assert admin.run(ADMIN, "--list", "dds").count('DD name = "dd-prod"') == 1
    assert admin.visible(I1) == {I1, T1}
    assert "discovery domain 'dd-prod': 2 configured members" in our_server.log()
