"""A target registered in iSNS with open-isns `isnsadm` is found over SLP multicast on
loopback, by its iSCSI name and in its DD's scope, and withdrawn when it deregisters.

Run against our isns-server (agent in-process) and against open-isns `isnsd` (the
standalone discovery-agent, following isnsd's SCNs): the agent only speaks iSNS.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery_agent.slp.attributes import parse_attr_list
from discovery_agent.slp.messages import AttrRply, AttrRqst, DAAdvert, Message, SrvRply, SrvRqst

from ..conftest import ADMIN
from ..peers import require
from ..polling import eventually_sync
from ..processes import DiscoveryAgentProcess, OpenIsnsServer, OurServer, free_port, isnsadm
from ..slp_peer import SlpUserAgent

pytestmark = pytest.mark.interop

DISK1 = "iqn.2026-11.org.example.test:slp-disk1"
HOST1 = "iqn.2026-11.org.example.test:slp-host1"
AGENT = "iqn.2026-11.org.example.test:slp-agent"
DISK2 = "iqn.2026-11.org.example.test:slp-disk2"
URL1 = f"service:iscsi:target://127.0.0.1:3260/{DISK1}"


def urls(replies: list[Message]) -> set[str]:
    return {e.url for r in replies if isinstance(r, SrvRply) for e in r.url_entries}


def find(ua: SlpUserAgent, scope: str, predicate: str = "") -> set[str]:
    """Targets by multicast: every DA answering within half a second."""
    request = SrvRqst(service_type="service:iscsi:target", scopes=(scope,), predicate=predicate)
    return urls(ua.multicast(request, wait=0.5))


def follow_the_registry(
    isns_port: int, slp_port: int, workdir: Path, dd_member_removal: bool = True
) -> None:
    """`dd_member_removal`: also withdraw a target deregistered while in a DD; isnsd
    keeps such a node in its "purgatory" and sends no SCN for it."""
    program = require("isnsadm")

    def run(source: str, *args: str) -> None:
        code, out = isnsadm(program, isns_port, source, *args, workdir=workdir)
        assert code == 0, f"isnsadm {' '.join(args)} failed:\n{out}"

    ua = SlpUserAgent(slp_port)
    listing = SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",))

    def listed() -> set[str]:
        reply = ua.unicast(listing)  # unicast: an empty answer comes back at once
        return urls([reply] if reply else [])

    try:
        # The DA answers for itself once it has read the registry (RFC 2608 12.2.2: the
        # first DAAdvert carries every scope), and shows the iSNS server as a storage
        # management service.
        discovery = SrvRqst(service_type="service:directory-agent")
        eventually_sync(
            lambda: ua.multicast(discovery, wait=0.5),
            lambda found: any(isinstance(a, DAAdvert) and a.boot_timestamp for a in found),
            what="a DAAdvert from the agent",
        )
        sms = SrvRqst(service_type="service:iscsi:sms", scopes=("DEFAULT",))
        expected = {f"service:iscsi:sms://127.0.0.1:{isns_port}"}
        eventually_sync(
            lambda: urls(ua.multicast(sms, 0.3)), lambda u: u == expected, what=f"{expected}"
        )

        run(DISK1, "--register", "entity=slp-stor1", "portal=127.0.0.1:3260", f"target={DISK1}")
        run(DISK2, "--register", "entity=slp-stor2", "portal=127.0.0.1:3261", f"target={DISK2}")
        run(HOST1, "--register", "entity=slp-host1", f"initiator={HOST1}")
        by_name = f"(iscsi-name={DISK1})"
        assert eventually_sync(lambda: find(ua, "DEFAULT", by_name), what=by_name) == {URL1}

        run(ADMIN, "--dd-register", "dd-name=dd-prod", f"dd-member-name={DISK1}",
            f"dd-member-name={HOST1}")  # fmt: skip
        assert eventually_sync(
            lambda: find(ua, "dd-prod", by_name), what=f"{by_name} in dd-prod"
        ) == {URL1}
        assert find(ua, "dd-prod") == {URL1}  # DISK2 is in no DD
        attributes = ua.unicast(AttrRqst(url=URL1, scopes=("dd-prod",)))
        assert isinstance(attributes, AttrRply)
        values = {a.tag: a.values for a in parse_attr_list(attributes.attr_list)}
        assert values["auth-name"] == (HOST1,) and values["portal-group"] == (1,)

        run(DISK2, "--deregister", "entity-id=slp-stor2")
        eventually_sync(listed, lambda found: found == {URL1}, what=f"only {URL1} listed")
        if dd_member_removal:
            run(DISK1, "--deregister", "entity-id=slp-stor1")
            eventually_sync(listed, lambda found: not found, what="nothing listed")
            assert find(ua, "dd-prod") == set()  # multicast: nothing found, nothing sent
    finally:
        ua.close()


def test_our_server_through_its_in_process_agent(our_server: OurServer, tmp_path: Path) -> None:
    slp_port = free_port()
    our_server.configure(slp={"listen": [f"127.0.0.1:{slp_port}"], "interfaces": ["127.0.0.1"]})
    our_server.start()
    try:
        follow_the_registry(our_server.port, slp_port, tmp_path)
    except AssertionError:
        print(our_server.log())
        raise


@pytest.fixture
def agent_on_isnsd(isnsd: OpenIsnsServer, tmp_path: Path) -> Iterator[DiscoveryAgentProcess]:
    agent = DiscoveryAgentProcess(tmp_path, isnsd.port, AGENT)
    yield agent
    agent.stop()


def test_open_isns_isnsd_through_the_standalone_agent(
    isnsd: OpenIsnsServer, agent_on_isnsd: DiscoveryAgentProcess, tmp_path: Path
) -> None:
    try:
        follow_the_registry(isnsd.port, agent_on_isnsd.port, tmp_path, dd_member_removal=False)
    except AssertionError:
        print(agent_on_isnsd.log())
        raise
    assert agent_on_isnsd.stop() == 0
    assert "following the iSNS registry" in agent_on_isnsd.log()
