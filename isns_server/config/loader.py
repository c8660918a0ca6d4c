"""YAML text -> validated `Config`, with errors that name the key and the line.

The loader is driven by the dataclasses in `schema.py`: field names are the allowed keys,
annotations say how to convert each value. Checks that span several fields live in
`_check`, after conversion.
"""

import dataclasses
import ipaddress
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from ..names import iscsi_name_problem
from .schema import (
    ChapCredentials,
    Config,
    ConfigValueError,
    ListenAddress,
    parse_size,
)

# Port assumed when a listen address is written without one.
_DEFAULT_PORTS = {
    "isns": 3205, "portal": 3260, "slp": 427, "api": 8080, "discovery_agent": 3205,
}  # fmt: skip
_SIZE_FIELDS = {
    "size", "max_message_size", "max_body_size", "reassembly_budget", "max_write_buffer",
}  # fmt: skip
_CHOICES = {
    "log_level": ("debug", "info", "warning", "error"),
    "backend": ("sqlite", "memory", "etcd"),
    "role": ("read", "admin"),
}
_POSITIVE = {
    "registration_period", "esi_min_interval", "esi_max_interval", "esi_retries",
    "scn_retries", "heartbeat_interval", "max_message_size", "login_timeout", "nop_in_timeout",
    "mtu", "rate_limit", "rate_burst", "advert_period", "max_body_size", "audit_records",
    "idle_timeout", "max_connections", "max_connections_per_source", "reassembly_budget",
    "reassembly_timeout", "udp_rate_limit", "udp_rate_burst", "udp_answer_factor",
    "max_write_buffer", "data_out_timeout", "login_warning_interval", "timeout", "lease_ttl",
}  # fmt: skip


_SCALAR_TYPES = (bool, int, str, Path, ListenAddress)


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and what to write instead."""


def load_config(path: Path | None) -> Config:
    """The embedded defaults when `path` is None, else the file's validated contents."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if root is None:
        return Config()
    converter = _Converter(source)
    config: Config = converter.convert(root, Config, ())
    problems = _check(config)
    if problems:
        raise ConfigError("\n".join(converter.locate(key, text) for key, text in problems))
    return config


class _Converter:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}  # dotted key path -> 1-based line, for later checks

    def locate(self, key: str, message: str, line: int | None = None) -> str:
        line = line or self.lines.get(key)
        where = f"{self.source} line {line}" if line else self.source
        return f"{where}: {key}: {message}"

    def fail(self, node: yaml.Node, path: tuple[str, ...], message: str) -> ConfigError:
        line = node.start_mark.line + 1
        return ConfigError(self.locate(".".join(path) or "top level", message, line))

    def convert(self, node: yaml.Node, hint: Any, path: tuple[str, ...]) -> Any:
        self.lines[".".join(path)] = node.start_mark.line + 1
        origin = get_origin(hint)
        if origin in (types.UnionType, typing.Union):  # X | None
            (inner,) = [a for a in get_args(hint) if a is not type(None)]
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                return None
            return self.convert(node, inner, path)
        if origin is tuple:
            if not isinstance(node, yaml.SequenceNode):
                if hint == tuple[ListenAddress, ...] and isinstance(node, yaml.ScalarNode):
                    return (self.convert(node, ListenAddress, path),)
                raise self.fail(node, path, "expected a list")
            item = get_args(hint)[0]
            return tuple(
                self.convert(child, item, (*path[:-1], f"{path[-1]}[{i}]"))
                for i, child in enumerate(node.value)
            )
        if hint in _SCALAR_TYPES:
            return self.convert_scalar(node, hint, path)
        return self.convert_section(node, hint, path)

    def convert_section(self, node: yaml.Node, cls: Any, path: tuple[str, ...]) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path, "expected a mapping of keys to values")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key not in fields:
                allowed = "unknown key; allowed here: " + ", ".join(fields)
                raise self.fail(key_node, (*path, str(key)), allowed)
            if key in values:
                raise self.fail(key_node, (*path, key), "given twice")
            values[key] = self.convert(value_node, hints[key], (*path, key))
        missing = [
            name
            for name, f in fields.items()
            if name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.fail(node, path, f"missing required key {missing[0]!r}")
        return cls(**values)

    def convert_scalar(self, node: yaml.Node, hint: Any, path: tuple[str, ...]) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"expected a single value ({_describe(hint)})")
        value = _scalar(node)
        name = path[-1].split("[")[0] if path else ""
        try:
            if hint is bool:
                if not isinstance(value, bool):
                    raise ConfigValueError(f"expected true or false, got {node.value!r}")
                return value
            if hint is int:
                if name in _SIZE_FIELDS:
                    value = parse_size(value if isinstance(value, int) else str(value))
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigValueError(f"expected a whole number, got {node.value!r}")
                if value < 0 or (name in _POSITIVE and value < 1):
                    raise ConfigValueError(f"expected at least {int(name in _POSITIVE)}")
                return value
            if hint is str:
                if name in _CHOICES and value not in _CHOICES[name]:
                    raise ConfigValueError(f"expected one of {', '.join(_CHOICES[name])}")
                return str(value)
            if hint is Path:
                return Path(str(value))
            # ListenAddress: a section's own port applies when only a host is written
            section = next((p for p in path if p in _DEFAULT_PORTS), "")
            return ListenAddress.parse(str(value), _DEFAULT_PORTS.get(section))
        except ConfigValueError as exc:
            raise self.fail(node, path, str(exc)) from None


def _scalar(node: yaml.ScalarNode) -> Any:
    """The scalar with YAML's implicit typing (true, 12, "12"), as SafeLoader reads it."""
    return yaml.SafeLoader("").construct_object(node)


def _describe(hint: Any) -> str:
    return {bool: "true or false", int: "a number", str: "a string"}.get(hint, "a value")


def _check(config: Config) -> list[tuple[str, str]]:
    """Checks that involve more than one value: (key path, problem) pairs."""
    problems: list[tuple[str, str]] = []
    isns = config.isns
    if isns.esi_min_interval > isns.esi_max_interval:
        problems.append(("isns.esi_min_interval", "must not exceed isns.esi_max_interval"))
    names = [(f"isns.control_nodes[{i}]", n) for i, n in enumerate(isns.control_nodes)]
    for i, target in enumerate(config.targets):
        names.append((f"targets[{i}].name", target.name))
        allowed = target.allowed_initiators
        names += [(f"targets[{i}].allowed_initiators[{j}]", n) for j, n in enumerate(allowed)]
    for i, dd in enumerate(config.discovery_domains):
        names += [(f"discovery_domains[{i}].members[{j}]", m) for j, m in enumerate(dd.members)]
    for where, name in names:
        if problem := iscsi_name_problem(name):
            problems.append((where, f"{name!r} is not an iSCSI name: {problem}"))
    problems += _duplicates("targets[{}].name", [t.name for t in config.targets])
    dd_names = [dd.name for dd in config.discovery_domains]
    problems += _duplicates("discovery_domains[{}].name", dd_names)
    portal = config.portal
    problems += _chap_problems(
        "portal.discovery_", portal.discovery_chap, portal.discovery_mutual_chap
    )
    paths: list[str] = []
    for i, target in enumerate(config.targets):
        problems += _duplicates(f"targets[{i}].luns[{{}}].lun", [lun.lun for lun in target.luns])
        for j, lun in enumerate(target.luns):
            where = f"targets[{i}].luns[{j}]"
            if not 0 <= lun.lun < 16384:
                problems.append((f"{where}.lun", "must be between 0 and 16383"))
            physical = lun.physical_block_size
            if physical not in _PHYSICAL_BLOCK_SIZES:
                problems.append(
                    (f"{where}.physical_block_size", f"{physical} is not 512 times a power of two")
                )
            if str(lun.path) in paths:  # two LUNs writing one file corrupt each other
                problems.append((f"{where}.path", f"{str(lun.path)!r} is used by another LUN"))
            paths.append(str(lun.path))
        if target.alias is not None and not 0 < len(target.alias.encode()) <= 255:
            problems.append((f"targets[{i}].alias", "must be 1 to 255 bytes"))
        problems += _chap_problems(f"targets[{i}].", target.chap, target.mutual_chap)
    return problems + _discovery_problems(config) + _api_problems(config)


# An event stream (api/events.py) with nothing to send writes a keepalive every 15 s; an
# idle timeout under this would cut it.
API_MIN_IDLE_TIMEOUT = 20


def _api_problems(config: Config) -> list[tuple[str, str]]:
    """isns.control_networks, the API's token names (the audit log tells them apart) and
    its idle timeout."""
    problems = _network_problems("isns.control_networks", config.isns.control_networks)
    if config.api.idle_timeout < API_MIN_IDLE_TIMEOUT:
        problems.append(
            (
                "api.idle_timeout",
                f"must be at least {API_MIN_IDLE_TIMEOUT}: an event stream with no change to"
                " send writes a keepalive every 15 s, and a shorter timeout would cut it",
            )
        )
    names = [token.name for token in config.api.tokens]
    problems += _duplicates("api.tokens[{}].name", names)
    problems += [(f"api.tokens[{i}].name", "empty name") for i, n in enumerate(names) if not n]
    return problems


def _network_problems(key: str, networks: tuple[str, ...]) -> list[tuple[str, str]]:
    problems = []
    for i, network in enumerate(networks):
        try:
            ipaddress.ip_network(network)
        except ValueError as exc:
            problems.append((f"{key}[{i}]", f"expected a network: {exc}"))
    return problems


def _chap_problems(
    prefix: str, chap: ChapCredentials | None, mutual: ChapCredentials | None
) -> list[tuple[str, str]]:
    """CHAP credentials `{prefix}chap` and `{prefix}mutual_chap` (RFC 3720 8.2.1)."""
    problems = []
    for key, credentials in (("chap", chap), ("mutual_chap", mutual)):
        if credentials is None:
            continue
        length = len(credentials.secret.encode())  # under 12 bytes: too easy to brute-force
        if not 12 <= length <= 255:
            problems.append((f"{prefix}{key}.secret", f"must be 12 to 255 bytes (is {length})"))
    if mutual and not chap:
        problems.append((f"{prefix}mutual_chap", f"needs {prefix}chap as well"))
    elif mutual and chap and mutual.secret == chap.secret:
        # One secret for both directions lets an attacker reflect our own challenge.
        problems.append((f"{prefix}mutual_chap.secret", f"must differ from {prefix}chap.secret"))
    return problems


def _duplicates(pattern: str, values: list[Any]) -> list[tuple[str, str]]:
    """A problem for each repeat of a value that must be unique; `pattern` takes the index."""
    return [
        (pattern.format(i), f"{value!r} is declared twice")
        for i, value in enumerate(values)
        if value in values[:i]
    ]


# READ CAPACITY (16) reports 2**0..15 logical blocks of 512 bytes per physical block.
_PHYSICAL_BLOCK_SIZES = frozenset(512 << n for n in range(16))
_MTU_RANGE = range(512, 65001)  # RFC 2608 6.1 wants at least a minimal datagram; UDP's limit


def _discovery_problems(config: Config) -> list[tuple[str, str]]:
    """The SLP, mDNS and discovery agent keys that need more than a type check."""
    slp, agent = config.slp, config.discovery_agent
    problems: list[tuple[str, str]] = []
    for i, address in enumerate(slp.interfaces):
        if not isinstance(_ip(address), ipaddress.IPv4Address):
            # RFC 3111 (SLP over IPv6 multicast) is not supported.
            problems.append((f"slp.interfaces[{i}]", f"{address!r} is not an IPv4 address"))
    for i, address in enumerate(config.mdns.interfaces):
        if _ip(address) is None:
            problems.append((f"mdns.interfaces[{i}]", f"{address!r} is not an IP address"))
    if not slp.scopes:
        problems.append(("slp.scopes", "a directory agent needs at least one scope"))
    problems += [(f"slp.scopes[{i}]", "empty scope") for i, s in enumerate(slp.scopes) if not s]
    problems += _network_problems("slp.trusted_networks", slp.trusted_networks)
    if slp.mtu not in _MTU_RANGE:
        problems.append(("slp.mtu", f"must be between {_MTU_RANGE.start} and {_MTU_RANGE[-1]}"))
    if agent.node_name and (problem := iscsi_name_problem(agent.node_name)):
        problems.append(("discovery_agent.node_name", f"not an iSCSI name: {problem}"))
    if agent.scn_port > 65535:
        problems.append(("discovery_agent.scn_port", "must be between 0 and 65535"))
    return problems


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
