"""The management API over a real registry and Dispatcher: reads, writes, If-Match,
tokens, audit, zoning insight, and bad input that changes nothing."""

from typing import Any

from isns_server.isnsp.constants import FunctionId, NodeType, Tag

from ..registry.builders import a, iqn, node, ok, portal, register
from .conftest import ADMIN_HEADERS, MAX_BODY, READ_HEADERS, Api, isns

T1, I1, I2 = iqn("t1"), iqn("i1"), iqn("i2")


async def post(api: Api, path: str, body: Any, headers: dict[str, str] = ADMIN_HEADERS) -> Any:
    return await api.client.post(path, json=body, headers=headers)


async def create_dd(api: Api, name: str, *members: str) -> dict[str, Any]:
    response = await post(api, "/api/v1/dds", {"name": name, "members": list(members)})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    assert response.headers["ETag"]
    return body


async def test_health_needs_no_token_and_everything_else_does(api: Api) -> None:
    assert (await api.client.get("/healthz")).status == 200
    ready = await api.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    assert (await api.client.get("/api/v1/openapi.json")).status == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = await api.client.get("/api/v1/nodes", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["field"] == "Authorization"


async def test_a_read_token_reads_and_previews_but_cannot_change(api: Api) -> None:
    before = api.state()
    refused = await post(api, "/api/v1/dds", {"name": "x"}, READ_HEADERS)
    assert refused.status == 403
    assert "admin" in (await refused.json())["error"]
    assert api.state() == before
    assert (await api.client.get("/api/v1/dds", headers=READ_HEADERS)).status == 200
    preview = await post(
        api, "/api/v1/zoning/preview", {"action": "create_dd", "name": "x"}, READ_HEADERS
    )
    assert preview.status == 200
    assert api.state() == before


async def test_create_rename_and_delete_a_dd_through_the_registry(api: Api) -> None:
    dd = await create_dd(api, "prod", T1, "10.0.0.1:3260")
    assert dd["members"] == [T1, "10.0.0.1:3260/tcp"] and dd["enabled"]
    registry_dd = api.registry.db.dds[dd["id"]]
    assert registry_dd.name == "prod" and T1 in registry_dd.nodes
    # The change is durable before the answer: the store holds the DD already.
    assert api.store.rows[("dd", dd["id"])]["name"] == "prod"
    path = f"/api/v1/dds/{dd['id']}"
    got = await api.client.get(path, headers=READ_HEADERS)
    renamed = await api.client.patch(
        path,
        json={"name": "production"},
        headers={**ADMIN_HEADERS, "If-Match": got.headers["ETag"]},
    )
    assert renamed.status == 200 and (await renamed.json())["name"] == "production"
    assert renamed.headers["ETag"] != got.headers["ETag"]
    deleted = await api.client.delete(path, headers=ADMIN_HEADERS)
    assert deleted.status == 204
    assert dd["id"] not in api.registry.db.dds and ("dd", dd["id"]) not in api.store.rows
    assert (await api.client.get(path, headers=READ_HEADERS)).status == 404


async def test_members_are_added_and_removed(api: Api) -> None:
    dd = await create_dd(api, "prod", T1)
    path = f"/api/v1/dds/{dd['id']}/members"
    added = await post(api, path, {"members": [I1, "[::1]:3260"]})
    assert (await added.json())["members"] == [T1, I1, "[::1]:3260/tcp"]
    removed = await post(api, path + "/remove", {"members": [T1, "[::1]:3260"]})
    assert removed.status == 200 and (await removed.json())["members"] == [I1]
    not_member = await post(api, path + "/remove", {"members": [I2]})
    assert not_member.status == 404 and (await not_member.json())["field"] == "members[0]"


async def test_a_stale_etag_is_refused_and_changes_nothing(api: Api) -> None:
    dd = await create_dd(api, "prod", T1)
    path = f"/api/v1/dds/{dd['id']}"
    etag = (await api.client.get(path, headers=READ_HEADERS)).headers["ETag"]
    await post(api, path + "/members", {"members": [I1]})  # another administrator
    before = api.state()
    for response in (
        await api.client.patch(
            path, json={"name": "n"}, headers={**ADMIN_HEADERS, "If-Match": etag}
        ),
        await api.client.delete(path, headers={**ADMIN_HEADERS, "If-Match": etag}),
        await api.client.post(
            path + "/members", json={"members": [I2]}, headers={**ADMIN_HEADERS, "If-Match": etag}
        ),
    ):
        assert response.status == 412
        assert (await response.json())["field"] == "If-Match"
    assert api.state() == before


async def test_bad_input_names_the_field_and_changes_nothing(api: Api) -> None:
    await create_dd(api, "prod", T1)
    before = api.state()
    cases: list[tuple[Any, int, str]] = [
        ({"name": "prod"}, 409, "name"),
        ({"name": "x", "members": ["not an iscsi name"]}, 422, "members[0]"),
        ({"name": "x", "members": [T1, "IQN.2026-11.Bad_Name"]}, 422, "members[1]"),
        ({"name": "x", "members": ["10.0.0.1:99999"]}, 422, "members[0]"),
        ({"name": "x", "members": ["10.0.0.1:3260/sctp"]}, 422, "members[0]"),
        ({"name": "x", "members": ["fe80::1:3260"]}, 422, "members[0]"),  # no brackets
        ({"name": "x", "members": [7]}, 400, "members[0]"),
        ({"name": "x", "members": "iqn"}, 400, "members"),
        ({"name": 5}, 400, "name"),
        ({"name": "x" * 300}, 422, "name"),
        ([1, 2], 400, "body"),
    ]
    for body, status, field in cases:
        response = await post(api, "/api/v1/dds", body)
        answer = await response.json()
        assert (response.status, answer["field"]) == (status, field), (body, answer)
        assert answer["error"]
    malformed = await api.client.post("/api/v1/dds", data=b'{"name": ', headers=ADMIN_HEADERS)
    assert malformed.status == 400 and (await malformed.json())["field"] == "body"
    huge = await api.client.post("/api/v1/dds", data=b"x" * (MAX_BODY + 1), headers=ADMIN_HEADERS)
    assert huge.status == 413 and "max_body_size" in (await huge.json())["error"]
    unknown = await post(api, "/api/v1/dds/999/members", {"members": [I1]})
    assert unknown.status == 404 and "999" in (await unknown.json())["error"]
    assert (await api.client.delete("/api/v1/dd-sets/5", headers=ADMIN_HEADERS)).status == 404
    no_route = await api.client.get("/api/v1/nothing", headers=ADMIN_HEADERS)
    assert no_route.status == 404 and (await no_route.json())["error"]
    assert api.state() == before
    # ... and the API still answers.
    assert (await api.client.get("/api/v1/dds", headers=READ_HEADERS)).status == 200


async def test_dd_sets_create_enable_disable_and_delete(api: Api) -> None:
    dd = await create_dd(api, "prod", T1, I1)
    created = await post(
        api, "/api/v1/dd-sets", {"name": "set", "dds": [dd["id"]], "enabled": False}
    )
    assert created.status == 201
    dds = await created.json()
    assert dds == {"id": dds["id"], "name": "set", "enabled": False, "dds": [dd["id"]]}
    dd_path = f"/api/v1/dds/{dd['id']}"
    assert not (await (await api.client.get(dd_path, headers=READ_HEADERS)).json())["enabled"]
    path = f"/api/v1/dd-sets/{dds['id']}"
    enabled = await api.client.patch(path, json={"enabled": True}, headers=ADMIN_HEADERS)
    assert (await enabled.json())["enabled"]
    assert (await (await api.client.get(dd_path, headers=READ_HEADERS)).json())["enabled"]
    clash = await post(api, "/api/v1/dd-sets", {"name": "set"})
    assert clash.status == 409
    unknown_dd = await post(api, path + "/dds", {"dds": [77]})
    assert unknown_dd.status == 422 and (await unknown_dd.json())["field"] == "dds[0]"
    out = await api.client.delete(f"{path}/dds/{dd['id']}", headers=ADMIN_HEADERS)
    assert (await out.json())["dds"] == []
    assert (await post(api, path + "/dds", {"dds": [dd["id"]]})).status == 200
    assert (await api.client.delete(path, headers=ADMIN_HEADERS)).status == 204
    assert api.registry.db.ddss == {}


async def test_deregister_an_entity(api: Api) -> None:
    ok(register(api.registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1)))
    entity = await api.client.get("/api/v1/entities/stor1", headers=READ_HEADERS)
    assert (await entity.json())["nodes"] == [T1]
    assert (await api.client.delete("/api/v1/entities/stor1", headers=ADMIN_HEADERS)).status == 204
    assert "stor1" not in api.registry.db.entities
    assert (await api.client.delete("/api/v1/entities/stor1", headers=ADMIN_HEADERS)).status == 404


async def test_node_pages_walk_every_node_once_with_filters(api: Api) -> None:
    names = []
    for n in range(2500):
        name = iqn(f"n{n:05d}")
        kind = NodeType.INITIATOR if n % 10 else NodeType.TARGET
        ok(register(api.registry, name, f"e{n}", node(name, kind)))
        names.append(name)
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/api/v1/nodes", params=query, headers=READ_HEADERS)
        body = await response.json()
        seen += [item["name"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)
    prefixed = await api.client.get(
        "/api/v1/nodes", params={"prefix": iqn("n0012"), "limit": "1000"}, headers=READ_HEADERS
    )
    assert [i["name"] for i in (await prefixed.json())["items"]] == [
        iqn(f"n0012{d}") for d in range(10)
    ]
    targets = await api.client.get(
        "/api/v1/nodes", params={"type": "target", "limit": "1000"}, headers=READ_HEADERS
    )
    assert len((await targets.json())["items"]) == 250
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"type": "disk"}, "type"),
    ):
        bad = await api.client.get("/api/v1/nodes", params=params, headers=READ_HEADERS)
        assert bad.status == 400 and (await bad.json())["field"] == field


async def test_other_lists(api: Api) -> None:
    ok(register(api.registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1)))
    scn = a(Tag.ISCSI_SCN_BITMAP, 0x08)
    ok(register(api.registry, I1, "host1", node(I1, NodeType.INITIATOR, scn)))
    await create_dd(api, "prod", T1, I1)
    isns(api.registry, FunctionId.DDS_REG, (), [a(Tag.DD_SET_SYMBOLIC_NAME, "s")])
    expected = {
        "/api/v1/entities": ["stor1", "host1"],
        "/api/v1/portals": ["10.0.0.1:3260/tcp"],
        "/api/v1/portal-groups": [T1],
        "/api/v1/subscriptions": [I1],
        "/api/v1/dd-sets": ["s"],
        "/api/v1/dds": ["prod"],
    }
    for path, keys in expected.items():
        body = await (
            await api.client.get(path, params={"limit": "1"}, headers=READ_HEADERS)
        ).json()
        first = body["items"][0] if body["items"] else {}
        key = next((first[k] for k in ("eid", "address", "node", "name") if k in first), None)
        assert (key is None and not keys) or key in keys, (path, body)
    node_view = await (await api.client.get(f"/api/v1/nodes/{I1}", headers=READ_HEADERS)).json()
    assert node_view["type"] == ["initiator"] and node_view["scn_bitmap"] == ["object_added"]
    assert node_view["dds"] == [1] and node_view["registration_expires_at"] is not None


async def test_every_write_is_audited_with_before_and_after(api: Api) -> None:
    dd = await create_dd(api, "prod", T1)
    await post(api, f"/api/v1/dds/{dd['id']}/members", {"members": [I1]})
    await post(api, "/api/v1/dds", {"name": "prod"})  # refused: not audited
    audit = await (await api.client.get("/api/v1/audit", headers=READ_HEADERS)).json()
    newest, oldest = audit["items"]
    assert newest["who"] == "ops" and newest["result"] == "ok"
    assert newest["before"]["members"] == [T1] and newest["after"]["members"] == [T1, I1]
    assert oldest["before"] is None and oldest["what"].startswith("create discovery domain")
    assert oldest["request"]["body"] == {"name": "prod", "members": [T1]}
    # Stored beside the registry's records: pending first, then complete in the same
    # batch (one transaction) as the change itself.
    ref = ("audit", newest["id"])
    pending, complete = [b[ref] for b in api.store.batches if ref in b]
    assert (pending or {})["result"] == "pending" and (complete or {})["result"] == "ok"
    (batch,) = [b for b in api.store.batches if b.get(ref) == complete]
    assert ("dd", dd["id"]) in batch
    page = await api.client.get("/api/v1/audit", params={"limit": "1"}, headers=READ_HEADERS)
    cursor = (await page.json())["next_cursor"]
    rest = await api.client.get("/api/v1/audit", params={"cursor": cursor}, headers=READ_HEADERS)
    assert [r["id"] for r in (await rest.json())["items"]] == [oldest["id"]]


async def test_explain_and_preview_show_the_effect_of_a_change(api: Api) -> None:
    ok(register(api.registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1)))
    dd = await create_dd(api, "prod", T1, I1)
    explain = await api.client.get(
        "/api/v1/zoning/explain", params={"initiator": I1, "target": T1}, headers=READ_HEADERS
    )
    answer = await explain.json()
    assert answer["visible"] and answer["reasons"][0]["dd_name"] == "prod"
    missing = await api.client.get(
        "/api/v1/zoning/explain", params={"initiator": I1}, headers=READ_HEADERS
    )
    assert missing.status == 400 and (await missing.json())["field"] == "target"
    api.sessions.append({"initiator": I1, "target": T1})
    before = api.state()
    change = {"action": "remove_members", "dd": dd["id"], "members": [I1]}
    preview = await post(api, "/api/v1/zoning/preview", change)
    body = await preview.json()
    assert body["removed"] == [{"initiator": I1, "target": T1}]
    assert body["sessions_losing_access"] == [{"initiator": I1, "target": T1}]
    assert api.state() == before  # nothing applied
    for bad, status in (({"action": "explode"}, 400), ({"action": "delete_dd", "dd": 42}, 404)):
        assert (await post(api, "/api/v1/zoning/preview", bad)).status == status


async def test_the_openapi_document_lists_exactly_the_routes_served(api: Api) -> None:
    document = await (await api.client.get("/api/v1/openapi.json")).json()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = set()
    for route in api.client.app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info()
        path = info.get("path") or info["formatter"]
        served.add((route.method, path))
    assert documented == served


async def test_portal_groups_and_subscriptions_page_by_prefix(api: Api) -> None:
    scn = a(Tag.ISCSI_SCN_BITMAP, 0x08)
    for n in range(6):
        name = iqn(f"{'ab'[n % 2]}{n}")
        extra = (scn,) if n != 4 else ()
        ok(
            register(
                api.registry,
                name,
                f"e{n}",
                portal("10.0.0.1", 3000 + n),
                node(name, NodeType.TARGET, *extra),
            )
        )

    async def walk(path: str, prefix: str, key: str) -> list[str]:
        found, cursor = [], None
        while True:
            params = {"limit": "1", "prefix": prefix, **({"cursor": cursor} if cursor else {})}
            body = await (await api.client.get(path, params=params, headers=READ_HEADERS)).json()
            found += [item[key] for item in body["items"]]
            if (cursor := body["next_cursor"]) is None:
                return found

    assert await walk("/api/v1/portal-groups", iqn("a"), "node") == [
        iqn(f"a{n}") for n in (0, 2, 4)
    ]
    assert await walk("/api/v1/subscriptions", iqn("a"), "node") == [iqn("a0"), iqn("a2")]
    assert await walk("/api/v1/subscriptions", "", "node") == [
        iqn(x) for x in ("a0", "a2", "b1", "b3", "b5")
    ]
