"""open-isns `isnsadm` against our server, step by step, compared with open-isns `isnsd`.

The same isnsadm commands run against both servers; their printed results must match once
the values each server chooses for itself (object indexes, timestamps) are masked.
"""

import re
from pathlib import Path

import pytest

from ..conftest import ADMIN
from ..peers import require
from ..processes import OpenIsnsServer, OurServer, isnsadm

pytestmark = pytest.mark.interop

DISK1 = "iqn.2026-11.org.example.test:disk1"
DISK2 = "iqn.2026-11.org.example.test:disk2"
HOST1 = "iqn.2026-11.org.example.test:host1"


def normalise(output: str) -> str:
    output = re.sub(r"(index|Index) = \d+", r"\1 = N", output)
    output = re.sub(r"Timestamp = .*", "Timestamp = T", output)
    return output


# (source name, isnsadm arguments) in order; every step's output is compared.
STEPS: list[tuple[str, tuple[str, ...]]] = [
    (DISK1, ("--register", "entity=stor1", "portal=127.0.0.1:3260", f"target={DISK1}")),
    (DISK2, ("--register", "entity=stor1", "portal=127.0.0.1:3261", f"target={DISK2}")),
    (HOST1, ("--register", "entity=host1", f"initiator={HOST1}")),
    (HOST1, ("--list", "nodes")),
    (HOST1, ("--list", "portals")),
    (HOST1, ("--list", "entities")),
    (HOST1, ("--query", f"iscsi-name={DISK1}")),
    (HOST1, ("--query", "entity-id=stor1")),
    (ADMIN, ("--dd-register", "dd-name=dd1", f"dd-member-name={DISK1}", f"dd-member-name={HOST1}")),
    (HOST1, ("--list", "nodes")),
    (DISK2, ("--deregister", f"iscsi-name={DISK2}")),
    (HOST1, ("--list", "nodes")),
    (HOST1, ("--list", "portals")),
    (DISK1, ("--deregister", "entity-id=stor1")),
    (HOST1, ("--list", "nodes")),
]


def run_steps(port: int, workdir: Path) -> list[tuple[int, str]]:
    program = require("isnsadm")
    return [
        (code, normalise(out))
        for code, out in (
            isnsadm(program, port, source, *args, workdir=workdir) for source, args in STEPS
        )
    ]


def test_isnsadm_sees_the_same_results_from_our_server_as_from_isnsd(
    our_server: OurServer, isnsd: OpenIsnsServer, tmp_path: Path
) -> None:
    our_server.start()
    theirs = run_steps(isnsd.port, tmp_path)
    ours = run_steps(our_server.port, tmp_path)
    for (source, args), (their_code, their_out), (our_code, our_out) in zip(
        STEPS, theirs, ours, strict=True
    ):
        step = f"isnsadm {' '.join(args)} (as {source})"
        assert (our_code, our_out) == (their_code, their_out), step
    assert "Successfully registered" in ours[0][1]
    assert DISK1 in ours[3][1] and HOST1 in ours[3][1]


def test_isnsadm_register_query_and_deregister(our_server: OurServer, tmp_path: Path) -> None:
    program = require("isnsadm")
    our_server.start()

    def run(source: str, *args: str) -> str:
        code, out = isnsadm(program, our_server.port, source, *args, workdir=tmp_path)
        assert code == 0, f"isnsadm {' '.join(args)} failed:\n{out}\n{our_server.log()}"
        return out

    run(DISK1, "--register", "entity=stor1", "portal=127.0.0.1:3260", f"target={DISK1}")
    run(HOST1, "--register", "entity=host1", f"initiator={HOST1}")
    nodes = run(ADMIN, "--list", "nodes")
    assert f'iSCSI name = "{DISK1}"' in nodes and f'iSCSI name = "{HOST1}"' in nodes
    portals = run(ADMIN, "--list", "portals")
    assert "Portal IP address = 127.0.0.1" in portals and "3260/tcp" in portals
    query = run(HOST1, "--query", f"iscsi-name={DISK1}")
    assert "Portal group tag = 1" in query and 'Entity identifier = "stor1"' in query
    dd = run(ADMIN, "--dd-register", "dd-name=dd1", f"dd-member-name={DISK1}")
    assert 'DD name = "dd1"' in dd
    # HOST1 is in no DD now, DISK1 is: zoning hides it (the default DD holds only HOST1).
    assert DISK1 not in run(HOST1, "--list", "nodes")
    assert DISK1 in run(ADMIN, "--list", "nodes")  # a control node sees everything
    run(ADMIN, "--deregister", f"iscsi-name={DISK1}")
    assert DISK1 not in run(ADMIN, "--list", "nodes")
