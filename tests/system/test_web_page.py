"""The web page in Debian's Chromium, driven by Playwright: log in with the token, see a
target appear as isnsadm registers it (server-sent events, no reload), create a
discovery domain and add an initiator to it through the zoning preview, and find the
result over iSNS with `isnsadm --list dds`."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ADMIN
from ..peers import in_ci, require
from ..processes import OurServer, free_port, isnsadm, wait_for_port

pytestmark = pytest.mark.interop

PREFIX = "iqn.2026-11.org.example.test:"
TARGET, INITIATOR = PREFIX + "remote-disk", PREFIX + "host1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000  # for what the page shows after a change, polled by Playwright


def sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        message = "playwright not installed (pip install '.[test]')"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return start()


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = require("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_files_need_no_token_and_nothing_else_is_served(our_server: OurServer) -> None:
    api_port = free_port()
    our_server.configure(api={"listen": f"127.0.0.1:{api_port}"})
    our_server.start()
    assert our_server.process is not None
    wait_for_port(api_port, our_server.process)
    base = f"http://127.0.0.1:{api_port}"
    status, headers, body = get(base + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'src="/static/app.js"' in body and b"http" not in body.split(b"<body>")[0]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, _ = get(f"{base}/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
    for bad in ("/static/..%2Fevents.py", "/static/%2e%2e", "/static/missing.js", "/static/"):
        status, _, body = get(base + bad)
        assert status == 404, bad
        assert "error" in json.loads(body)
    # The API behind the page still wants its token, and the server goes on answering.
    assert get(base + "/api/v1/nodes")[0] == 401
    assert get(base + "/healthz")[0] == 200


def register(server: OurServer, workdir: Path, *args: str, source: str) -> None:
    code, out = isnsadm(
        require("isnsadm"), server.port, source, "--register", *args, workdir=workdir
    )
    assert code == 0, out


def test_log_in_watch_a_target_arrive_and_zone_an_initiator_through_the_preview(
    our_server: OurServer, tmp_path: Path, browser: Any
) -> None:
    from playwright.sync_api import expect

    api_port = free_port()
    our_server.settings["isns"]["default_dd"] = False
    our_server.configure(api={"listen": f"127.0.0.1:{api_port}"})
    our_server.start()
    assert our_server.process is not None
    wait_for_port(api_port, our_server.process)
    token = (our_server.workdir / "data" / "api-admin.token").read_text().strip()
    register(our_server, tmp_path, "entity=host1", f"initiator={INITIATOR}", source=INITIATOR)

    page = browser.new_page()
    expect.set_options(timeout=WAIT_MS)
    page.goto(f"http://127.0.0.1:{api_port}/")

    page.fill("#token", "not-the-token-at-all")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_contain_text("refused the token")

    page.fill("#token", token)
    page.click("#login-form button")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#initiators")).to_contain_text(INITIATOR)

    # Registered over iSNS while the page is open: it appears through the event stream.
    register(
        our_server,
        tmp_path,
        "entity=stor-remote",
        "portal=127.0.0.2:3260",
        f"target={TARGET}",
        source=TARGET,
    )
    expect(page.locator("#targets")).to_contain_text(TARGET)

    # A new discovery domain holding the target: preview first, then apply.
    page.select_option("#dd-select", "new")
    page.fill("#new-dd-name", "prod")
    page.fill("#member", TARGET)
    page.click("#preview-button")
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#preview-what")).to_contain_text("create discovery domain 'prod'")
    page.click("#apply-button")
    expect(page.locator("#change-result")).to_contain_text("Applied")
    expect(page.locator("#dd-select")).to_contain_text("prod (ID")

    # Add the initiator: the preview names the pair it would gain, nothing lost.
    page.select_option("#dd-select", label=page.locator("#dd-select option").first.inner_text())
    page.select_option("#action", "add")
    page.fill("#member", INITIATOR)
    page.click("#preview-button")
    expect(page.locator("#preview-added")).to_contain_text(f"{INITIATOR} → {TARGET}")
    expect(page.locator("#preview-removed")).to_have_text("none")
    page.click("#apply-button")
    expect(page.locator("#change-result")).to_contain_text("Applied")
    row = page.locator(f'#matrix tr[data-node="{INITIATOR}"] td.member')
    expect(row).to_have_count(1)
    page.close()

    # Over iSNS, as any Control Node sees it.
    code, out = isnsadm(
        require("isnsadm"), our_server.port, ADMIN, "--list", "dds", workdir=tmp_path
    )
    assert code == 0 and "prod" in out and INITIATOR in out and TARGET in out, out
    # And the API's audit names the page's two writes.
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/api/v1/audit", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        audit = json.loads(answer.read())
    assert [r["what"] for r in audit["items"]][:2] == [
        f"add 1 members to discovery domain {audit['items'][0]['after']['id']}",
        "create discovery domain 'prod' with 1 members",
    ]
