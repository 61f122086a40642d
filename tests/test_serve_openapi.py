"""/openapi.json: valid OpenAPI 3.0 (openapi-spec-validator), inside what Salesforce
External Services registers (the rules, with their Salesforce Help pages, are in
tests/external_services.py), and true: every response the app gives matches it.
"""

from __future__ import annotations

import copy
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
from tests.external_services import external_services_problems, schemas
from tests.test_serve import AUTHENTICATED, Api, _meeting, _seed


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
        for _, node in schemas(schema, ""):
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
