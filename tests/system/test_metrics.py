"""/metrics of the real server after iSNS (isnsadm), SLP (a user agent) and portal
(libiscsi) traffic: `promtool check metrics` accepts it, and the counters moved."""

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from discovery_agent.slp.messages import SrvRqst

from ..conftest import ADMIN
from ..peers import require
from ..processes import OurServer, free_port, isnsadm, slp_settings, wait_for_port
from ..slp_peer import SlpUserAgent

pytestmark = pytest.mark.interop

PREFIX = "iqn.2026-11.org.example.test:"
DISK, REMOTE = PREFIX + "disk", PREFIX + "remote"
FRIEND, STRANGER = PREFIX + "friend", PREFIX + "stranger"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def libiscsi(program: str, initiator: str, url: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [require(program), "-i", initiator, url], capture_output=True, timeout=30, check=False
    )


def test_metrics_after_isns_slp_and_portal_traffic_pass_promtool(
    our_server: OurServer, tmp_path: Path
) -> None:
    promtool = require("promtool")
    portal_port = our_server.enable_portal()
    api_port, slp_port = free_port(), free_port()
    lun = {"lun": 0, "path": str(tmp_path / "disk.img"), "size": "1MiB"}
    our_server.settings["isns"]["default_dd"] = False
    our_server.configure(
        targets=[{"name": DISK, "luns": [lun], "allowed_initiators": [FRIEND]}],
        api={"listen": f"127.0.0.1:{api_port}"},
        slp=slp_settings(slp_port),
    )
    our_server.start()
    assert our_server.process is not None
    wait_for_port(api_port, our_server.process)
    token = (our_server.workdir / "data" / "api-admin.token").read_text().strip()
    url = f"http://127.0.0.1:{api_port}/metrics"

    status, text = scrape(url, None)
    assert status == 401 and "Bearer" in text
    before = samples(scrape(url, token)[1])

    # iSNS: a registration and a control node's query.
    isnsadm_path = require("isnsadm")
    code, out = isnsadm(
        isnsadm_path,
        our_server.port,
        REMOTE,
        "--register",
        "entity=stor-remote",
        "portal=127.0.0.2:3260",
        f"target={REMOTE}",
        workdir=tmp_path,
    )
    assert code == 0, out
    code, out = isnsadm(isnsadm_path, our_server.port, ADMIN, "--list", "nodes", workdir=tmp_path)
    assert code == 0 and REMOTE in out, out

    # SLP: a service request, and a datagram that is not SLP.
    agent = SlpUserAgent(slp_port)
    try:
        assert agent.unicast(SrvRqst(service_type="service:iscsi:target")) is not None
        agent.exchange_udp(b"\x02\x01not slp", wait=0.5)
    finally:
        agent.close()

    # The portal: INQUIRY through a zoned login, a login zoning refuses, a discovery.
    lun_url = f"iscsi://127.0.0.1:{portal_port}/{DISK}/0"
    inquiry = libiscsi("iscsi-inq", FRIEND, lun_url)
    assert inquiry.returncode == 0, inquiry.stdout + inquiry.stderr
    assert libiscsi("iscsi-inq", STRANGER, lun_url).returncode != 0
    listing = libiscsi("iscsi-ls", FRIEND, f"iscsi://127.0.0.1:{portal_port}")
    assert listing.returncode == 0, listing.stdout + listing.stderr

    status, text = scrape(url, token)
    assert status == 200
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    after = samples(text)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("isns_requests_total", function="DEV_ATTR_REG", status="SUCCESSFUL") >= 1
    assert moved("isns_request_duration_seconds_count", function="DEV_ATTR_QRY") >= 1
    assert moved("isns_registry_objects", kind="node") == 1  # REMOTE (DISK was there)
    assert moved("isns_registry_nodes", type="target") == 1
    assert moved("isns_store_batch_records_count") >= 1
    assert moved("isns_slp_requests_total", function="SrvRqst") >= 1
    assert moved("isns_slp_requests_total", function="invalid") == 1
    assert moved("isns_portal_logins_total", outcome="success") >= 2
    assert moved("isns_portal_logins_total", outcome="zoning_refused") == 1
    assert moved("isns_lun_commands_total", target=DISK, lun="0", direction="read") >= 1
    assert moved("isns_task_duration_seconds_count") >= 1
