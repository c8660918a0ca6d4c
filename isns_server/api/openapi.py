"""The OpenAPI 3 description of the API, served at /api/v1/openapi.json; a test keeps its
paths equal to the routes the app serves."""

from typing import Any

from aiohttp import web

from .auth import public

Schema = dict[str, Any]
routes = web.RouteTableDef()

_NULLABLE_STRING: Schema = {"type": "string", "nullable": True}
_NULLABLE_INT: Schema = {"type": "integer", "nullable": True}
_NULLABLE_NUMBER: Schema = {"type": "number", "nullable": True}
_STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
_INTS: Schema = {"type": "array", "items": {"type": "integer"}}


def _object(properties: Schema, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_PAIRS: Schema = {
    "type": "array",
    "items": _object({"initiator": {"type": "string"}, "target": {"type": "string"}}),
}
_REASON = _object(
    {
        "kind": {
            "type": "string",
            "enum": ["control_node", "same_entity", "discovery_domain", "default_dd"],
        },
        "dd_id": _NULLABLE_INT,
        "dd_name": _NULLABLE_STRING,
        "dd_sets": _STRINGS,
    }
)

SCHEMAS: dict[str, Schema] = {
    "Error": _object({"error": {"type": "string"}, "field": _NULLABLE_STRING}),
    "Entity": _object(
        {
            "eid": {"type": "string"},
            "index": {"type": "integer"},
            "protocol": {"type": "integer"},
            "management_ip": _NULLABLE_STRING,
            "timestamp": {"type": "integer"},
            "registration_period": _NULLABLE_INT,
            "expires_at": _NULLABLE_NUMBER,
            "portals": _STRINGS,
            "nodes": _STRINGS,
        }
    ),
    "Node": _object(
        {
            "name": {"type": "string"},
            "index": {"type": "integer"},
            "type": _STRINGS,
            "alias": _NULLABLE_STRING,
            "entity": {"type": "string"},
            "portals": _STRINGS,
            "dds": _INTS,
            "scn_bitmap": _STRINGS,
            "registration_expires_at": _NULLABLE_NUMBER,
            "esi_monitored": {"type": "boolean"},
        }
    ),
    "Portal": _object(
        {
            "address": {"type": "string"},
            "index": {"type": "integer"},
            "entity": {"type": "string"},
            "symbolic_name": _NULLABLE_STRING,
            "esi_interval": _NULLABLE_INT,
            "esi_port": _NULLABLE_STRING,
            "scn_port": _NULLABLE_STRING,
            "esi": {
                **_object({"last_answer": {"type": "number"}, "unanswered": {"type": "integer"}}),
                "nullable": True,
            },
        }
    ),
    "PortalGroup": _object(
        {
            "node": {"type": "string"},
            "portal": {"type": "string"},
            "tag": _NULLABLE_INT,
            "index": {"type": "integer"},
            "entity": {"type": "string"},
        }
    ),
    "DiscoveryDomain": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "features": {"type": "integer"},
            "enabled": {"type": "boolean"},
            "members": _STRINGS,
            "dd_sets": _INTS,
        }
    ),
    "DDSet": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "enabled": {"type": "boolean"},
            "dds": _INTS,
        }
    ),
    "Subscription": _object(
        {"node": {"type": "string"}, "scn_bitmap": _STRINGS, "scn_ports": _STRINGS}
    ),
    "LocalTarget": _object(
        {
            "name": {"type": "string"},
            "alias": _NULLABLE_STRING,
            "portals": _STRINGS,
            "luns": {
                "type": "array",
                "items": _object(
                    {
                        "lun": {"type": "integer"},
                        "path": {"type": "string"},
                        "size": {"type": "integer"},
                        "read_only": {"type": "boolean"},
                    }
                ),
            },
        }
    ),
    "Session": _object(
        {
            "initiator": {"type": "string"},
            "isid": {"type": "string"},
            "tsih": {"type": "integer"},
            "target": _NULLABLE_STRING,
            "type": {"type": "string"},
            "header_digest": {"type": "string"},
            "data_digest": {"type": "string"},
            "chap_user": _NULLABLE_STRING,
            "peer": {"type": "string"},
            "login_time": {"type": "number"},
            "commands": {"type": "integer"},
            "bytes_read": {"type": "integer"},
            "bytes_written": {"type": "integer"},
        }
    ),
    "AuditRecord": _object(
        {
            "id": {"type": "integer"},
            "time": {"type": "number"},
            "who": {"type": "string"},
            "what": {"type": "string"},
            "request": {"type": "object"},
            "before": {"nullable": True},
            "after": {"nullable": True},
            "result": {"type": "string"},
        }
    ),
    "Explanation": _object(
        {
            "initiator": {"type": "string"},
            "target": {"type": "string"},
            "visible": {"type": "boolean"},
            "target_registered": {"type": "boolean"},
            "reasons": {"type": "array", "items": _REASON},
            "disabled_dds": {"type": "array", "items": _REASON},
        }
    ),
    "Preview": _object(
        {
            "action": {"type": "string"},
            "what": {"type": "string"},
            "added": _PAIRS,
            "removed": _PAIRS,
            "added_count": {"type": "integer"},
            "removed_count": {"type": "integer"},
            "sessions_losing_access": _PAIRS,
        }
    ),
    "Health": _object({"status": {"type": "string"}}),
    "Readiness": _object(
        {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    ),
    "NewDD": _object({"name": {"type": "string"}, "members": _STRINGS}, required=["name"]),
    "DDName": _object({"name": {"type": "string"}}),
    "Members": _object({"members": _STRINGS}),
    "NewDDSet": _object(
        {"name": {"type": "string"}, "enabled": {"type": "boolean"}, "dds": _INTS},
        required=["name"],
    ),
    "DDSetUpdate": _object(
        {"name": {"type": "string"}, "enabled": {"type": "boolean"}}, required=[]
    ),
    "DDIds": _object({"dds": _INTS}),
    "ProposedChange": {
        **_object(
            {
                "action": {
                    "type": "string",
                    "enum": [
                        "create_dd",
                        "rename_dd",
                        "add_members",
                        "remove_members",
                        "delete_dd",
                        "create_dd_set",
                        "update_dd_set",
                        "add_dd_set_members",
                        "remove_dd_set_member",
                        "delete_dd_set",
                    ],
                },
                "dd": {"type": "integer"},
                "dd_set": {"type": "integer"},
                "name": {"type": "string"},
                "members": _STRINGS,
                "dds": _INTS,
                "enabled": {"type": "boolean"},
            },
            required=["action"],
        ),
        "description": "The change as the matching write route takes it, plus its action "
        "and the `dd` or `dd_set` it applies to",
    },
}


def _page_of(item: str) -> Schema:
    return _object(
        {"items": {"type": "array", "items": _ref(item)}, "next_cursor": _NULLABLE_STRING}
    )


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, *media: str) -> Schema:
    return {
        "description": description,
        "content": {m: {"schema": {"type": "string"}} for m in media},
    }


_ERROR = _json(_ref("Error"), "the request was refused; `error` says why, `field` names what")
_QUERY_PAGE = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string"},
        "description": "next_cursor of the previous page",
    },
]
_PREFIX = {
    "name": "prefix",
    "in": "query",
    "schema": {"type": "string"},
    "description": "only names starting with this",
}
_NODE_TYPE = {
    "name": "type",
    "in": "query",
    "schema": {"type": "string", "enum": ["target", "initiator", "control"]},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "schema": {"type": "string"},
    "description": "the ETag read before; 412 when the object changed since",
}


def _path_param(name: str, integer: bool = False) -> Schema:
    schema: Schema = {"type": "integer", "minimum": 0} if integer else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _operation(
    summary: str,
    responses: dict[str, Schema],
    parameters: list[Schema] | None = None,
    body: str | None = None,
    secured: bool = True,
) -> Schema:
    operation: Schema = {"summary": summary, "responses": {**responses, "default": _ERROR}}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(_ref(body), body)}
    if not secured:
        operation["security"] = []
    return operation


def _list(summary: str, item: str, extra: list[Schema] | None = None) -> Schema:
    return {
        "get": _operation(
            summary, {"200": _json(_page_of(item), "one page")}, [*_QUERY_PAGE, *(extra or [])]
        )
    }


_DD_ID, _DDS_ID = _path_param("dd_id", True), _path_param("dds_id", True)
_DD = {"200": _json(_ref("DiscoveryDomain"), "the DD as it is now (ETag header)")}
_DDS = {"200": _json(_ref("DDSet"), "the DD set as it is now (ETag header)")}
_GONE = {"204": {"description": "done"}}

PATHS: dict[str, Schema] = {
    "/healthz": {
        "get": _operation(
            "the process is alive", {"200": _json(_ref("Health"), "alive")}, secured=False
        )
    },
    "/readyz": {
        "get": _operation(
            "the store is writable and the listeners are bound",
            {
                "200": _json(_ref("Readiness"), "ready"),
                "503": _json(_ref("Readiness"), "not ready; checks say what fails"),
            },
            secured=False,
        )
    },
    "/api/v1/openapi.json": {
        "get": _operation(
            "this document", {"200": _json({"type": "object"}, "OpenAPI 3")}, secured=False
        )
    },
    "/api/v1/entities": _list("network entities, by EID", "Entity", [_PREFIX]),
    "/api/v1/entities/{eid}": {
        "get": _operation(
            "one entity", {"200": _json(_ref("Entity"), "the entity")}, [_path_param("eid")]
        ),
        "delete": _operation(
            "deregister the entity with its portals and nodes (as DevDereg)",
            _GONE,
            [_path_param("eid")],
        ),
    },
    "/api/v1/nodes": _list("storage nodes, by name", "Node", [_PREFIX, _NODE_TYPE]),
    "/api/v1/nodes/{name}": {
        "get": _operation(
            "one storage node", {"200": _json(_ref("Node"), "the node")}, [_path_param("name")]
        )
    },
    "/api/v1/portals": _list("portals, by address", "Portal"),
    "/api/v1/portal-groups": _list("portal groups, by node and portal", "PortalGroup", [_PREFIX]),
    "/api/v1/dds": {
        **_list("discovery domains, by ID", "DiscoveryDomain", [_PREFIX]),
        "post": _operation(
            "create a discovery domain (as DDReg)",
            {"201": _json(_ref("DiscoveryDomain"), "created (ETag header)")},
            body="NewDD",
        ),
    },
    "/api/v1/dds/{dd_id}": {
        "get": _operation("one discovery domain", _DD, [_DD_ID]),
        "patch": _operation("rename (as DDReg)", _DD, [_DD_ID, _IF_MATCH], body="DDName"),
        "delete": _operation("delete (as DDDereg)", _GONE, [_DD_ID, _IF_MATCH]),
    },
    "/api/v1/dds/{dd_id}/members": {
        "post": _operation("add members (as DDReg)", _DD, [_DD_ID, _IF_MATCH], body="Members")
    },
    "/api/v1/dds/{dd_id}/members/remove": {
        "post": _operation("remove members (as DDDereg)", _DD, [_DD_ID, _IF_MATCH], body="Members")
    },
    "/api/v1/dd-sets": {
        **_list("DD sets, by ID", "DDSet", [_PREFIX]),
        "post": _operation(
            "create a DD set (as DDSReg); enabled unless `enabled` is false",
            {"201": _json(_ref("DDSet"), "created (ETag header)")},
            body="NewDDSet",
        ),
    },
    "/api/v1/dd-sets/{dds_id}": {
        "get": _operation("one DD set", _DDS, [_DDS_ID]),
        "patch": _operation(
            "rename, enable or disable (as DDSReg)", _DDS, [_DDS_ID, _IF_MATCH], body="DDSetUpdate"
        ),
        "delete": _operation("delete (as DDSDereg)", _GONE, [_DDS_ID, _IF_MATCH]),
    },
    "/api/v1/dd-sets/{dds_id}/dds": {
        "post": _operation("add DDs (as DDSReg)", _DDS, [_DDS_ID, _IF_MATCH], body="DDIds")
    },
    "/api/v1/dd-sets/{dds_id}/dds/{dd_id}": {
        "delete": _operation(
            "take a DD out of the set (as DDSDereg)", _DDS, [_DDS_ID, _DD_ID, _IF_MATCH]
        )
    },
    "/api/v1/subscriptions": _list("nodes with an SCN Bitmap", "Subscription", [_PREFIX]),
    "/api/v1/targets": {
        "get": _operation(
            "the embedded portal's targets and LUNs",
            {
                "200": _json(
                    _object({"items": {"type": "array", "items": _ref("LocalTarget")}}), "all"
                )
            },
        )
    },
    "/api/v1/sessions": {
        "get": _operation(
            "live iSCSI sessions on the embedded portal",
            {"200": _json(_object({"items": {"type": "array", "items": _ref("Session")}}), "all")},
        )
    },
    "/api/v1/audit": _list("API writes, newest first", "AuditRecord"),
    "/api/v1/zoning/explain": {
        "get": _operation(
            "whether an initiator sees a target, and through what",
            {"200": _json(_ref("Explanation"), "the answer")},
            [
                {
                    "name": "initiator",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                },
                {"name": "target", "in": "query", "required": True, "schema": {"type": "string"}},
            ],
        )
    },
    "/api/v1/zoning/preview": {
        "post": _operation(
            "what a DD or DD set change would do; changes nothing (a read token may ask)",
            {"200": _json(_ref("Preview"), "pairs gained and lost, sessions losing access")},
            body="ProposedChange",
        )
    },
    "/api/v1/events": {
        "get": _operation(
            "registry changes as server-sent events (hello, change, overflow); the stream "
            "stays open, a comment line every 15 s",
            {"200": _text("the event stream", "text/event-stream")},
        )
    },
    "/metrics": {
        "get": _operation(
            "Prometheus metrics, text exposition format (a read token is enough)",
            {"200": _text("the metrics", "text/plain")},
        )
    },
    "/": {
        "get": _operation(
            "the web page; it asks for a token and sends it with its API calls",
            {"200": _text("the page", "text/html")},
            secured=False,
        )
    },
    "/static/{name}": {
        "get": _operation(
            "the web page's script and style sheet",
            {"200": _text("the file", "text/javascript", "text/css", "text/html")},
            [_path_param("name")],
            secured=False,
        )
    },
}

DOCUMENT: Schema = {
    "openapi": "3.0.3",
    "info": {
        "title": "isns-server management API",
        "version": "1",
        "description": "Read the iSNS registry, zone it, and see why a host sees what it "
        "sees. Writes take the registry's own path (durable, SCNs, SLP, SendTargets) and "
        "are audited. docs/api.md has examples.",
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
}


@routes.get("/api/v1/openapi.json")
@public
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
