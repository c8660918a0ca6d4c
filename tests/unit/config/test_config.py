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


def test_a_lun_is_fixed_unless_declared_removable() -> None:
    config = parse_config(
        "targets:\n - name: iqn.2026-11.a.b:c\n"
        "   luns: [{lun: 0, path: a}, {lun: 1, path: b.iso, read_only: true, removable: true}]\n"
    )
    fixed, cartridge = config.targets[0].luns
    assert not fixed.removable
    assert cartridge.removable and cartridge.read_only
    assert fixed.physical_block_size == 512


def test_a_lun_may_have_larger_physical_blocks() -> None:
    config = parse_config(
        "targets:\n - name: iqn.2026-11.a.b:c\n"
        "   luns: [{lun: 0, path: a, physical_block_size: 4096}]\n"
    )
    assert config.targets[0].luns[0].physical_block_size == 4096


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
        (
            "portal:\n  discovery_chap: {user: d, secret: tooshort}\n",
            "line 2: portal.discovery_chap.secret: must be 12 to 255 bytes (is 8)",
        ),
        (
            "portal:\n  discovery_mutual_chap: {user: p, secret: portalsecret12}\n",
            "line 2: portal.discovery_mutual_chap: needs portal.discovery_chap as well",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n   chap: {user: a, secret: samesecret1234}\n"
            "   mutual_chap: {user: t, secret: samesecret1234}\n",
            "line 4: targets[0].mutual_chap.secret: must differ from targets[0].chap.secret",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n   allowed_initiators: [Host1]\n",
            "targets[0].allowed_initiators[0]: 'Host1' is not an iSCSI name",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n"
            "   luns: [{lun: 0, path: a}, {lun: 1, path: a}]\n",
            "targets[0].luns[1].path: 'a' is used by another LUN",
        ),
        ("portal:\n  nop_in_timeout: 0\n", "line 2: portal.nop_in_timeout: expected at least 1"),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n"
            "   luns:\n     - {lun: 0, path: a, removable: maybe}\n",
            "line 4: targets[0].luns[0].removable: expected true or false",
        ),
        (
            "targets:\n - name: iqn.2026-11.a.b:c\n"
            "   luns:\n     - {lun: 0, path: a, physical_block_size: 4000}\n",
            "targets[0].luns[0].physical_block_size: 4000 is not 512 times a power of two",
        ),
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


def test_discovery_agent_keys_and_their_safe_defaults() -> None:
    config = parse_config("")
    assert config.slp.scopes == ("DEFAULT",) and config.slp.mtu == 1400
    assert config.slp.trusted_networks == ()  # no SLP registrations until allowed
    assert config.discovery_agent.isns_server == ListenAddress("127.0.0.1", 3205)
    config = parse_config(
        "slp:\n  scopes: [site-a, lab]\n  trusted_networks: [10.0.0.0/24, 'fd00::/64']\n"
        "discovery_agent:\n  isns_server: 192.0.2.1\n  scn_port: 3206\n"
        "  node_name: iqn.2026-11.org.example:agent1\n"
    )
    assert config.slp.scopes == ("site-a", "lab")
    assert config.discovery_agent.isns_server == ListenAddress("192.0.2.1", 3205)
    assert config.discovery_agent.scn_port == 3206


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('slp:\n  interfaces: ["::1"]\n', "line 2: slp.interfaces[0]: '::1' is not an IPv4"),
        ("mdns:\n  interfaces: [eth0]\n", "line 2: mdns.interfaces[0]: 'eth0' is not an IP"),
        ("slp:\n  scopes: []\n", "line 2: slp.scopes: a directory agent needs at least one"),
        ('slp:\n  scopes: [a, ""]\n', "slp.scopes[1]: empty scope"),
        ("slp:\n  trusted_networks: [10.0.0.1/8]\n", "has host bits set"),
        ("slp:\n  mtu: 100\n", "line 2: slp.mtu: must be between 512 and 65000"),
        ("slp:\n  rate_limit: 0\n", "line 2: slp.rate_limit: expected at least 1"),
        ("discovery_agent:\n  node_name: Agent\n", "discovery_agent.node_name: not an iSCSI"),
        ("discovery_agent:\n  scn_port: 70000\n", "discovery_agent.scn_port: must be between"),
        ("discovery_agent:\n  isns_server: isns.example\n", "expected an IPv4 or IPv6 address"),
    ],
)
def test_bad_discovery_agent_keys_name_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml")
    assert expected in str(caught.value)


def test_portal_settings_and_target_access_lists() -> None:
    config = parse_config(
        "portal:\n"
        "  listen: 127.0.0.1\n"
        "  discovery_chap: {user: disco, secret: discosecret12}\n"
        "  nop_in_interval: 0\n"
        "targets:\n"
        "  - name: iqn.2026-11.org.example:disk1\n"
        "    alias: first disk\n"
        "    allowed_initiators: [iqn.1993-08.org.debian:01:host1]\n"
    )
    assert config.portal.listen == (ListenAddress("127.0.0.1", 3260),)
    assert config.portal.discovery_chap is not None and config.portal.nop_in_interval == 0
    assert (config.portal.login_timeout, config.portal.nop_in_timeout) == (15, 15)
    assert config.targets[0].alias == "first disk"
    assert config.targets[0].allowed_initiators == ("iqn.1993-08.org.debian:01:host1",)
