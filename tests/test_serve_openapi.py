"""/openapi.json: valid OpenAPI 3.0 (openapi-spec-validator), inside what Salesforce
External Services registers, and true: every response the app gives matches it.

The External Services rules checked here come from Salesforce Help:
- "Schema Definition Support" / "Schema Definitions"
  (help.salesforce.com, platform.external_services_schema_def_definition.htm):
  OpenAPI 2.0 or 3.0 documents; GET, PATCH, PUT, POST and DELETE only; every parameter
  has a name; response headers are not supported; the supported data types are binary,
  boolean, date, datetime, double, enum, float, integer, long, string, any, objects,
  lists and additionalProperties maps.
- "Naming and Description Conventions" (platform.external_services_schema_def_naming_
  description.htm): the operation name comes from operationId; object and property
  names become Apex class and property names, so they must be valid Apex identifiers;
  descriptions beyond 1,333 characters are cut.
- "System Limits" (platform.external_services_schema_def_limits.htm): a JSON schema of
  at most 10,000,000 characters; at most 3,000 active operations and objects per org.
OpenAPI 3.1 constructs (``type`` lists with "null", ``const``, ``examples`` in schemas,
``webhooks``...) are not 3.0 and External Services does not read 3.1.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from spe_core import Engine, FakeClock, Plugins, open_store
from spe_serve.app import create_app
from tests.test_serve import AUTHENTICATED, Api, _meeting, _seed

APEX_IDENTIFIER = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)")
METHODS = {"get", "put", "post", "patch", "delete"}
TYPES = {"string", "integer", "number", "boolean", "object", "array"}
FORMATS = {None, "date", "date-time", "int32", "int64", "float", "double", "binary", "byte"}
ONLY_31 = {
    "const",
    "examples",
    "prefixItems",
    "$schema",
    "$defs",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentSchemas",
    "dependentRequired",
    "if",
    "then",
    "else",
    "contentEncoding",
    "contentMediaType",
}


def _schemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object inside ``node`` (a schema), with where it is."""
    if not isinstance(node, dict):
        return
    yield where, node
    for name, sub in node.get("properties", {}).items():
        yield from _schemas(sub, f"{where}.{name}")
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            yield from _schemas(node[key], f"{where}.{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, ())):
            yield from _schemas(sub, f"{where}.{key}[{i}]")


def external_services_problems(doc: dict[str, Any]) -> list[str]:
    """What would keep Salesforce External Services from registering ``doc``."""
    problems: list[str] = []
    if not str(doc.get("openapi", "")).startswith("3.0."):
        problems.append(f"openapi is {doc.get('openapi')!r}, not 3.0.x")
    for key in ("webhooks", "jsonSchemaDialect"):
        if key in doc:
            problems.append(f"3.1 top-level key {key}")
    size = len(json.dumps(doc))
    if size > 10_000_000:
        problems.append(f"document of {size} characters")
    all_schemas: list[tuple[str, dict[str, Any]]] = []
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        if not APEX_IDENTIFIER.fullmatch(name):
            problems.append(f"schema name {name!r} is not an Apex identifier")
        all_schemas.extend(_schemas(schema, name))
    seen: set[str] = set()
    operations = 0
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            operations += 1
            if method not in METHODS:
                problems.append(f"{where}: method not supported")
                continue
            op_id = op.get("operationId")
            if not op_id or not APEX_IDENTIFIER.fullmatch(op_id) or len(op_id) > 80:
                problems.append(f"{where}: operationId {op_id!r} is not an Apex identifier")
            if op_id in seen:
                problems.append(f"{where}: operationId {op_id!r} twice")
            seen.add(op_id)
            if not op.get("summary"):
                problems.append(f"{where}: no summary")
            if method == "get" and "requestBody" in op:
                problems.append(f"{where}: a GET with a request body")
            if len(op.get("description", "")) > 1333:
                problems.append(f"{where}: description longer than 1,333 characters")
            for p in op.get("parameters", ()):
                if not p.get("name") or not APEX_IDENTIFIER.fullmatch(p["name"]):
                    problems.append(f"{where}: parameter name {p.get('name')!r}")
                all_schemas.extend(_schemas(p.get("schema"), f"{where} {p.get('name')}"))
            for content in op.get("requestBody", {}).get("content", {}).values():
                all_schemas.extend(_schemas(content.get("schema"), f"{where} body"))
            for status, response in op.get("responses", {}).items():
                if "headers" in response:
                    problems.append(f"{where} {status}: response headers")
                for content in response.get("content", {}).values():
                    all_schemas.extend(_schemas(content.get("schema"), f"{where} {status}"))
    if operations > 3000:
        problems.append(f"{operations} operations")
    for where, schema in all_schemas:
        if "$ref" in schema:
            target = schema["$ref"].removeprefix("#/components/schemas/")
            if target not in doc.get("components", {}).get("schemas", {}):
                problems.append(f"{where}: $ref {schema['$ref']} does not resolve")
            if len(schema) > 1:
                problems.append(f"{where}: keys beside $ref are ignored in 3.0")
            continue
        kind = schema.get("type")
        if not isinstance(kind, str) or kind not in TYPES:
            problems.append(f"{where}: type {kind!r}")
        if schema.get("format") not in FORMATS:
            problems.append(f"{where}: format {schema.get('format')!r}")
        for key in ONLY_31 & set(schema):
            problems.append(f"{where}: {key} is OpenAPI 3.1 / JSON Schema 2020-12")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in schema and not isinstance(schema[key], bool):
                problems.append(f"{where}: numeric {key} is 3.1")
        for name in schema.get("properties", {}):
            if not APEX_IDENTIFIER.fullmatch(name):
                problems.append(f"{where}: property {name!r} is not an Apex identifier")
        if len(schema.get("description", "")) > 1333:
            problems.append(f"{where}: description longer than 1,333 characters")
    return problems


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    clock = FakeClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
    engine = Engine(
        open_store(f"sqlite:///{tmp_path / 'spe.db'}"),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
    )
    _seed(engine, clock)
    yield Api(engine)
    engine.close()


@pytest.fixture
def doc(api: Api) -> dict[str, Any]:
    r = api.call("GET", "/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data: dict[str, Any] = r.json()
    return data


def test_the_document_is_valid_openapi_3_0(doc: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert doc["openapi"] == "3.0.3"
    validator.validate(doc)


def test_the_document_is_what_external_services_registers(doc: dict[str, Any]) -> None:
    assert external_services_problems(doc) == []
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == 17 and "pullNext" in ids and "resolveOpportunity" in ids


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(openapi="3.1.0"), "not 3.0.x"),
        (lambda d: d.update(webhooks={}), "webhooks"),
        (
            lambda d: d["components"]["schemas"]["Opportunity"]["properties"].update(
                ownerId={"type": ["string", "null"]}
            ),
            "type ['string', 'null']",
        ),
        (
            lambda d: d["components"]["schemas"]["Opportunity"]["properties"].update(
                kind={"type": "string", "const": "x"}
            ),
            "const is OpenAPI 3.1",
        ),
        (
            lambda d: d["components"]["schemas"]["PullRequest"]["properties"]["count"].update(
                exclusiveMinimum=0
            ),
            "numeric exclusiveMinimum",
        ),
        (lambda d: d["paths"]["/api/v1/queue"]["get"].update(operationId="get-queue"), "Apex"),
        (lambda d: d["paths"]["/api/v1/queue"]["get"].update(operationId="get__queue"), "Apex"),
        (
            lambda d: d["paths"]["/api/v1/queue"]["get"].update(operationId="getMetrics"),
            "twice",
        ),
        (
            lambda d: d["paths"]["/api/v1/queue"]["get"].update(requestBody={"content": {}}),
            "GET with a request body",
        ),
        (
            lambda d: d["paths"]["/api/v1/queue"]["get"]["responses"]["200"].update(
                headers={"X-Rate": {}}
            ),
            "response headers",
        ),
        (
            lambda d: d["components"]["schemas"].update({"Bad-Name": {"type": "object"}}),
            "not an Apex identifier",
        ),
        (
            lambda d: d["components"]["schemas"]["Task"]["properties"].update(
                {"due_at_": {"type": "string"}}
            ),
            "property 'due_at_'",
        ),
        (
            lambda d: d["components"]["schemas"]["Task"]["properties"].update(
                {"at": {"type": "string", "format": "uuid"}}
            ),
            "format 'uuid'",
        ),
        (
            lambda d: d["components"]["schemas"]["MemberWork"]["properties"].update(
                {"x": {"$ref": "#/components/schemas/Nope"}}
            ),
            "does not resolve",
        ),
        (
            lambda d: d["paths"]["/api/v1/queue"]["get"].update(description="x" * 1334),
            "1,333",
        ),
    ],
)
def test_the_external_services_check_catches_what_it_must(
    doc: dict[str, Any], change: Any, expected: str
) -> None:
    broken = copy.deepcopy(doc)
    change(broken)
    problems = external_services_problems(broken)
    assert any(expected in p for p in problems), problems


def _strict(components: dict[str, Any]) -> dict[str, Any]:
    """The components with undeclared properties forbidden (responses say all they hold)."""
    out = copy.deepcopy(components)
    for schema in out["schemas"].values():
        for _, node in _schemas(schema, ""):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
    return out


def test_every_response_matches_its_schema(api: Api, doc: dict[str, Any]) -> None:
    oas = pytest.importorskip("openapi_schema_validator")
    components = _strict(doc["components"])
    templates = [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]

    def operation(method: str, path: str) -> dict[str, Any]:
        for m, template, op in templates:
            pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
            if m == method and re.fullmatch(pattern, path):
                return op
        raise AssertionError(f"no operation for {method} {path}")

    checked: set[tuple[str, int]] = set()

    def call(method: str, path: str, as_: str | None, body: Any = None, **kw: Any) -> Any:
        r = api.call(method, path, as_, body, **kw)
        op = operation(method, path)
        assert str(r.status_code) in op["responses"], (method, path, r.status_code, r.text)
        schema = op["responses"][str(r.status_code)]["content"]["application/json"]["schema"]
        validator = oas.OAS30Validator({**schema, "components": components})
        errors = [e.message for e in validator.iter_errors(r.json())]
        assert not errors, (method, path, r.status_code, errors)
        checked.add((op["operationId"], r.status_code))
        return r

    call("GET", "/healthz", None)
    call("GET", "/readyz", None)
    for method, path, body in AUTHENTICATED:
        call(method, path, None, body)  # 401
    call("GET", "/api/v1/queue", "ann")
    opp = call("POST", "/api/v1/members/ann/pull", "ann", {"count": 2}).json()["released"]
    call("GET", "/api/v1/members/ann/work", "ann")
    call("POST", "/api/v1/members/ann/pull", "bob")  # 403
    call("POST", "/api/v1/members/cs/pull", "cs")  # 409
    call(
        "POST",
        f"/api/v1/opportunities/{opp[0]['id']}/resolve",
        "ann",
        {"memberId": "ann", "outcome": "won"},
    )
    call("POST", "/api/v1/opportunities/nope/resolve", "ann", {"memberId": "ann", "outcome": "x"})
    call("POST", f"/api/v1/opportunities/{opp[1]['id']}/give-back", "ann", {"memberId": "ann"})
    call("POST", "/api/v1/tasks", "ann", {"id": "t-1", "kind": "quote", "accountId": "a"})
    call("POST", "/api/v1/tasks/t-1/accept", "cs", {"memberId": "cs"})
    call("POST", "/api/v1/tasks/t-1/complete", "cs", {"memberId": "cs"})
    call("POST", "/api/v1/tasks/nope/complete", "cs", {"memberId": "cs"})  # 404
    slots = call("POST", "/api/v1/proposals", "cy", {"request": _meeting()}).json()["slots"]
    call(
        "POST",
        "/api/v1/bookings",
        "cy",
        {"request": _meeting(), "memberId": "fay", "start": slots[0]["start"]},
    )
    later = (datetime.fromisoformat(slots[0]["start"]) + timedelta(days=1)).isoformat()
    call("POST", "/api/v1/bookings/req-1/reschedule", "cy", {"start": later})
    call("POST", "/api/v1/bookings/req-1/cancel", "cy")
    call("GET", "/api/v1/metrics", "ann", params={"days": 3})
    call("POST", "/api/v1/queue/replenish", "admin")
    call("POST", "/api/v1/queue/sweep", "admin")
    call("POST", "/api/v1/queue/sweep", "ann")  # 403
    api.engine.close()
    call("GET", "/readyz", None)  # 503
    call("GET", "/api/v1/queue", "ann")  # 503
    assert {op for op, status in checked if status == 200} == {
        op["operationId"] for _, _, op in templates
    }
    assert {status for _, status in checked} == {200, 401, 403, 404, 409, 422, 503}


def test_the_document_served_is_the_one_built(tmp_path: Path) -> None:
    with Engine(open_store(f"sqlite:///{tmp_path / 'x.db'}")) as engine:
        app = create_app(engine)
        assert TestClient(app).get("/openapi.json").json() == app.state.openapi
