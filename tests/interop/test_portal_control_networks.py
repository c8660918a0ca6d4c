"""A Control Node's name as iSCSI initiator: control-wide SendTargets and logins only from
isns.control_networks (issue 13 item 9), seen through libiscsi's iscsi-ls and iscsi-inq.

The DDs come from the configuration, since no iSNS client on loopback has control rights
when control_networks is 192.0.2.0/24 (documentation addresses: plain data, never contacted).
"""

from pathlib import Path

import pytest

from ..conftest import ADMIN
from ..processes import OurServer
from .test_portal_zoning import PREFIX, discover, inquiry

pytestmark = pytest.mark.interop

T1, T2, I2 = (PREFIX + name for name in ("t1", "t2", "i2"))


def test_a_control_node_name_from_outside_control_networks_sees_only_its_dds(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal()
    lun = {"lun": 0, "size": "1MiB"}
    our_server.configure(
        targets=[
            {"name": T1, "luns": [{**lun, "path": str(tmp_path / "t1.img")}]},
            {"name": T2, "luns": [{**lun, "path": str(tmp_path / "t2.img")}]},
        ],
        discovery_domains=[
            {"name": "dd-a", "members": [T1, ADMIN]},
            {"name": "dd-b", "members": [T2, I2]},
        ],
    )
    our_server.settings["isns"]["control_networks"] = ["192.0.2.0/24"]
    our_server.start()
    local = f"127.0.0.1:{port},1"
    assert discover(port, ADMIN) == {(T1, local)}
    assert inquiry(port, ADMIN, T1).returncode == 0
    refused = inquiry(port, ADMIN, T2)
    assert "Authorization failure" in refused.stdout + refused.stderr  # login status 0x0202
    assert discover(port, I2) == {(T2, local)}  # others are served as before

    # From loopback, inside the default control_networks, the name sees every target.
    our_server.stop()
    del our_server.settings["isns"]["control_networks"]
    our_server.start()
    assert discover(port, ADMIN) == {(T1, local), (T2, local)}
    assert inquiry(port, ADMIN, T2).returncode == 0
