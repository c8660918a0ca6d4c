"""The import rules of docs/architecture.md ("Layers"), checked on the source.

Each package may import only the packages listed for it (its own modules always). A
module not matched by a more specific rule falls under its package's rule.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Leaf helpers every layer may use: they import nothing of ours but each other.
SHARED = (
    "isns_server.names",
    "isns_server.netaddr",
    "isns_server.ratelimit",
    "isns_server.schedule",
)
LOGGING = ("isns_server.logthrottle",)

ALLOWED: dict[str, tuple[str, ...]] = {
    # wire codecs: bytes in, messages out
    "isns_server.isnsp": (),
    "discovery_agent.slp": ("isns_server.netaddr", "isns_server.ratelimit"),
    "isns_server.portal.iscsi": (),
    # core (pure): the SCSI layer knows block units and SAM, nothing of iSCSI or the portal
    "isns_server.registry": ("isns_server.isnsp", *SHARED),
    "isns_server.scsi": ("isns_server.__version__", "isns_server.libc", *SHARED),  # INQUIRY
    # storage
    "isns_server.store": (*LOGGING, *SHARED),
    "isns_server.replication": (
        "isns_server.registry",  # applies other replicas' changes, allocates index blocks
        "isns_server.store",
        "isns_server.config",
        *LOGGING,
        *SHARED,
    ),
    # shared plumbing
    "isns_server.names": (),
    "isns_server.libc": (),
    "isns_server.netaddr": (),
    "isns_server.ratelimit": (),
    "isns_server.schedule": (),
    "isns_server.logthrottle": (),
    "isns_server.admission": ("isns_server.netaddr", *LOGGING),
    "isns_server.config": SHARED,
    "isns_server.client": ("isns_server.isnsp", *SHARED),
    # front-ends
    "isns_server.service": (
        "isns_server.isnsp",
        "isns_server.registry",
        "isns_server.store",
        "isns_server.replication",
        "isns_server.config",
        "isns_server.admission",
        "isns_server.metrics",  # the adapters' counters, handed in by app.py
        *LOGGING,
        *SHARED,
    ),
    # the portal's sans-IO session layer: no sockets, threads or event loop (portal.runtime)
    "isns_server.portal.session": (
        "isns_server.portal.iscsi",
        "isns_server.scsi",
        "isns_server.isnsp",
        "isns_server.registry",
        *LOGGING,
        *SHARED,
    ),
    "isns_server.portal": (
        "isns_server.__version__",
        "isns_server.scsi",
        "isns_server.libc",
        "isns_server.isnsp",
        "isns_server.registry",
        "isns_server.service.server",  # listen_problem: one wording for bind errors
        "isns_server.service.dispatcher",
        "isns_server.config",
        "isns_server.admission",
        "isns_server.metrics",  # the portal's counters, handed in by app.py
        *LOGGING,
        *SHARED,
    ),
    "isns_server.api": (
        "isns_server.__version__",
        "isns_server.isnsp",
        "isns_server.registry",
        "isns_server.store",
        "isns_server.service",
        "isns_server.portal",
        "isns_server.config",
        "isns_server.admission",
        "isns_server.metrics",
        *LOGGING,
        *SHARED,
    ),
    # the discovery agent is a client of the name server: codec, client, config only
    "discovery_agent": (
        "isns_server.__version__",
        "isns_server.isnsp",
        "isns_server.client",
        "isns_server.config",
        "isns_server.admission",
        *LOGGING,
        *SHARED,
    ),
}

# Composition roots wire everything together.
ROOTS = (
    "isns_server.app",
    "isns_server.cli",
    "isns_server.launcher",
    "isns_server.__main__",
    "isns_server.metrics",
    "discovery_agent.cli",
    "discovery_agent.service",
    "discovery_agent.__main__",
)


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("isns_server", "discovery_agent"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = [f"{target}.{alias.name}" for alias in node.names]
            else:
                target = node.module or ""
                names = [f"{target}.{alias.name}" for alias in node.names]
            # `from . import x` imports module x; `from .m import f` imports module m
            targets.update(names if node.module is None else [target])
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return {t for t in targets if t.split(".")[0] in ("isns_server", "discovery_agent")}


def _rule(module: str) -> str | None:
    matches = [p for p in ALLOWED if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def _permits(rule: str, target: str) -> bool:
    return _within(target, rule) or any(_within(target, allowed) for allowed in ALLOWED[rule])


def _violations() -> list[str]:
    found = []
    for module, path in _modules():
        if module in ROOTS or module in ("isns_server", "discovery_agent"):
            continue
        rule = _rule(module)
        if rule is None:
            found.append(f"{module}: no layering rule; add it to ALLOWED")
            continue
        found.extend(
            f"{module} imports {target}"
            for target in sorted(_imports(module, path))
            if not _permits(rule, target)
        )
    return found


def test_every_import_follows_the_layering_rules() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("isns_server.registry.queries", "isns_server.service.dispatcher", False),
        ("isns_server.isnsp.codec", "isns_server.registry", False),
        ("isns_server.service.transport", "discovery_agent.slp", False),
        ("discovery_agent.bridge", "isns_server.registry.database", False),
        ("isns_server.registry.queries", "isns_server.isnsp.codec", True),
        ("isns_server.scsi.sense", "isns_server.portal.iscsi.constants", False),
        ("isns_server.scsi.backstore", "isns_server.portal.runtime.heap", False),
        ("isns_server.portal.session.connection", "isns_server.portal.runtime.workers", False),
        ("isns_server.portal.iscsi.pdu", "isns_server.scsi.constants", False),
        ("isns_server.portal.session.tasks", "isns_server.scsi.logical_unit", True),
    ],
)
def test_the_rules_refuse_what_the_architecture_forbids(
    module: str, target: str, allowed: bool
) -> None:
    rule = _rule(module)
    assert rule is not None
    assert _permits(rule, target) is allowed
