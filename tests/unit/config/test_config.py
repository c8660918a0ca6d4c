from pathlib import Path

import pytest

from isns_server.config import Config, ConfigError, ListenAddress, load_config, parse_config

CONTRACT_EXAMPLE = """\
data_dir: ./isns-data
isns:
  listen: ["0.0.0.0:3205"]
  registration_period: 900
  default_dd: true
  control_nodes: []
portal:
  listen: ["0.0.0.0:3260"]
targets:
  - name: iqn.2026-11.org.example:disk1
    luns:
      - {lun: 0, path: ./isns-data/disk1.img, size: 1GiB}
    chap: {user: alice, secret: alicesecret12}
    mutual_chap: {user: tgt, secret: targetsecret12}
discovery_domains:
  - name: dd-prod
    members: [iqn.2026-11.org.example:disk1, iqn.1993-08.org.debian:01:host1]
slp:
  listen: ["0.0.0.0:427"]
  interfaces: ["127.0.0.1"]
api:
  listen: 127.0.0.1:8080
"""


def test_the_design_contract_example_is_accepted() -> None:
    config = parse_config(CONTRACT_EXAMPLE)
    assert config.isns.listen == (ListenAddress("0.0.0.0", 3205),)
    assert config.targets[0].luns[0].size == 1 << 30
    assert config.targets[0].mutual_chap is not None
    assert config.discovery_domains[0].members[1] == "iqn.1993-08.org.debian:01:host1"
    assert config.slp.interfaces == ("127.0.0.1",)


def test_no_file_and_empty_file_give_the_safe_defaults() -> None:
    for config in (load_config(None), parse_config("")):
        assert config == Config()
        assert config.api.listen == ListenAddress("127.0.0.1", 8080)
        assert config.slp.interfaces == ()  # no multicast until an administrator asks
        assert config.mdns.interfaces == ()
        assert config.isns.heartbeat_address is None


def test_listen_addresses_take_the_sections_default_port_and_ipv6_brackets() -> None:
    config = parse_config('isns:\n  listen: ["[::1]", "127.0.0.2:4000"]\napi:\n  listen: ::1\n')
    assert config.isns.listen == (ListenAddress("::1", 3205), ListenAddress("127.0.0.2", 4000))
    assert config.api.listen == ListenAddress("::1", 8080)
    assert str(config.isns.listen[0]) == "[::1]:3205"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("isns:\n  listn: x\n", "line 2: isns.listn: unknown key; allowed here: enabled, listen"),
        (
            "isns:\n  registration_period: abc\n",
            "isns.registration_period: expected a whole",
        ),
        ("isns:\n  esi_retries: 0\n", "line 2: isns.esi_retries: expected at least 1"),
        ('isns:\n  listen: ["1.2.3:5"]\n', "isns.listen[0]: expected an IPv4 or IPv6 address"),
        ("api:\n  listen: 127.0.0.1:99999\n", "api.listen: expected a port between 1 and 65535"),
        ("isns:\n  default_dd: maybe\n", "isns.default_dd: expected true or false"),
        ("isns: [1]\n", "line 1: isns: expected a mapping"),
        ("store: {backend: etcd2}\n", "store.backend: expected one of sqlite, memory"),
        ("targets:\n  - luns: []\n", "line 2: targets[0]: missing required key 'name'"),
        ("targets:\n  - name: IQN.X\n", "line 2: targets[0].name: 'IQN.X' is not an iSCSI name"),
        (
            "isns:\n  esi_min_interval: 500\n  esi_max_interval: 10\n",
            "line 2: isns.esi_min_interval: must not exceed",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n   chap: {user: a, secret: short}\n",
            "line 3: targets[0].chap.secret: must be 12 to 255 bytes (is 5)",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n - name: iqn.2026-11.a.b:c\n",
            "line 3: targets[1].name: 'iqn.2026-11.a.b:c' is declared twice",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n   luns: [{lun: 0, path: a, size: 1XB}]\n",
            "targets[0].luns[0].size: expected a size such as 4096",
        ),
        ("isns:\n  enabled: true\n  enabled: false\n", "line 3: isns.enabled: given twice"),
        ("isns: {\n", "not valid YAML"),
    ],
)
def test_bad_configuration_names_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml")
    assert str(caught.value).startswith("site.yaml")
    assert expected in str(caught.value)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "missing.yaml")
