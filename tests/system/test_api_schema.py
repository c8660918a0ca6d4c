"""Schemathesis against the OpenAPI document the running server serves: generated
requests (valid and not) to every operation never get a 5xx, and every answer matches
the document's status codes, content types and schemas. Examples are bounded so the
run stays well under a minute."""

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ..processes import OurServer
from .test_api import PREFIX, start_with_api

if TYPE_CHECKING:  # schemathesis defines its OpenAPI case type for type checkers only
    from schemathesis.specs.openapi.schemas import OpenApiCase

# Something to read, and names for generated requests to collide with.
DDS = ({"name": "prod", "members": [PREFIX + "t1", PREFIX + "i1", "127.0.0.1:3260"]},)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    server = OurServer(Path(tmp_path_factory.mktemp("api-schema")), control_nodes=[])
    url, headers = start_with_api(server)
    for body in DDS:
        request = urllib.request.Request(
            url + "/api/v1/dds",
            data=json.dumps(body).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201
    yield url, headers
    server.stop()


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, dict[str, str]]) -> schemathesis.BaseSchema:
    url, _ = served
    return schemathesis.openapi.from_url(url + "/api/v1/openapi.json")


# The event stream never ends by design; tests/unit/api/test_events.py covers it.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/v1/events")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(
    case: "OpenApiCase", served: tuple[str, dict[str, str]]
) -> None:
    url, headers = served
    case.call_and_validate(
        base_url=url,
        headers=headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
