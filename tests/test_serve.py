"""`spe serve`: the real ASGI app over a real SQLite store (PostgreSQL with
SPE_TEST_POSTGRES_URL), called through Starlette's TestClient: every operation, who may
call what, the error mapping, the tokens, and no secret in a log line or a body."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from spe_core import Engine, FakeClock, Location, Member, Opportunity, Plugins, Role, open_store
from spe_core.errors import (
    ConfigError,
    InvalidValue,
    NotFound,
    RoleMayNotPull,
    RuleViolation,
    SpeError,
    StoreError,
    TransientError,
    UnknownMember,
    WrongOwner,
    WrongState,
)
from spe_serve.app import create_app, error_status
from spe_serve.tokens import PREFIX, TokenKind, Tokens
from tests.pg import drop_test_schemas, needs_postgres, schema_url

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SITE = Location(51.5, -0.12, "London")


def _team() -> list[Member]:
    return [
        Member("ann", "Ann", Role.INSIDE_SALES),
        Member("bob", "Bob", Role.INSIDE_SALES),
        Member("cy", "Cy", Role.SALES_COORDINATOR),
        Member("dee", "Dee", Role.SALES_COORDINATOR),
        Member("fay", "Fay", Role.FIELD_SALES, coordinator_id="cy", home_base=SITE),
        Member("gus", "Gus", Role.FIELD_SALES, coordinator_id="dee", home_base=SITE),
        Member("cs", "Cas", Role.CUSTOMER_SERVICE),
        Member("eng", "Eli", Role.ENGINEERING),
    ]


class Api:
    """The app on one engine, with a token of each kind."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tokens = Tokens(engine)
        self.client = TestClient(create_app(engine))
        self.token: dict[str, str] = {}
        for name, kind, member in [
            ("ann", TokenKind.MEMBER, "ann"),
            ("bob", TokenKind.MEMBER, "bob"),
            ("cy", TokenKind.MEMBER, "cy"),
            ("fay", TokenKind.MEMBER, "fay"),
            ("cs", TokenKind.MEMBER, "cs"),
            ("integration", TokenKind.INTEGRATION, None),
            ("admin", TokenKind.ADMIN, None),
        ]:
            self.token[name] = self.tokens.create(kind, member, label=name)[1]

    def call(
        self, method: str, path: str, as_: str | None = None, body: Any = None, **kw: Any
    ) -> Any:
        headers = {} if as_ is None else {"Authorization": f"Bearer {self.token.get(as_, as_)}"}
        headers.update(kw.pop("headers", {}))
        return self.client.request(method, path, headers=headers, json=body, **kw)


def _seed(engine: Engine, clock: FakeClock) -> None:
    engine.upsert_members(_team())
    engine.enqueue([Opportunity(f"opp-{i}", f"acct-{i}", tier=i % 2) for i in range(6)])
    for member in ("fay", "gus"):
        engine.record_busy(member, [], MONDAY, MONDAY + timedelta(days=14))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
def api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    engine = Engine(
        open_store(f"sqlite:///{tmp_path / 'spe.db'}"),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
    )
    _seed(engine, clock)
    yield Api(engine)
    engine.close()


def _meeting(request_id: str = "req-1", **more: Any) -> dict[str, Any]:
    return {
        "id": request_id,
        "accountId": "acct-9",
        "durationMinutes": 60,
        "mode": "in_person",
        "earliest": (MONDAY + timedelta(days=1)).isoformat(),
        "deadline": (MONDAY + timedelta(days=5)).isoformat(),
        "location": {"lat": 51.51, "lon": -0.1, "address": "1 Client St"},
        **more,
    }


# --- every operation ----------------------------------------------------------------------


def test_health_and_readiness_need_no_token(api: Api) -> None:
    assert api.call("GET", "/healthz").json() == {"status": "ok"}
    assert api.call("GET", "/readyz").json() == {"status": "ok", "store": "sqlite"}


def test_queue_status(api: Api) -> None:
    r = api.call("GET", "/api/v1/queue", "ann")
    assert r.status_code == 200
    body = r.json()
    assert (body["level"], body["target"], body["zone"], body["backlog"]) == (6, 100, "red", 0)
    assert body["oldestQueuedAt"] == MONDAY.isoformat()


def test_pull_resolve_give_back_and_my_work(api: Api) -> None:
    r = api.call("POST", "/api/v1/members/ann/pull", "ann")
    assert r.status_code == 200, r.text
    (first,) = r.json()["released"]
    assert first["tier"] == 1 and first["ownerId"] == "ann" and first["status"] == "released"
    two = api.call("POST", "/api/v1/members/ann/pull", "ann", {"count": 1}).json()["released"][0]
    work = api.call("GET", "/api/v1/members/ann/work", "ann").json()
    assert sorted(o["id"] for o in work["opportunities"]) == sorted([first["id"], two["id"]])
    assert work["tasks"] == []

    resolved = api.call(
        "POST",
        f"/api/v1/opportunities/{first['id']}/resolve",
        "ann",
        {"memberId": "ann", "outcome": "appointment_set"},
    )
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["outcome"]) == (
        "resolved",
        "appointment_set",
    )
    back = api.call(
        "POST",
        f"/api/v1/opportunities/{two['id']}/give-back",
        "ann",
        {"memberId": "ann", "reason": "wrong language"},
    )
    assert back.status_code == 200 and back.json()["status"] == "queued"
    assert api.engine.opportunity(two["id"]).excluded == frozenset({"ann"})
    assert api.call("GET", "/api/v1/members/ann/work", "ann").json()["opportunities"] == []


def test_a_retried_call_with_its_idempotency_key_returns_the_first_result(api: Api) -> None:
    key = {"Idempotency-Key": "7f1c2a9e-retry"}
    first = api.call("POST", "/api/v1/members/ann/pull", "ann", headers=key)
    again = api.call("POST", "/api/v1/members/ann/pull", "ann", headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json() and len(first.json()["released"]) == 1
    assert len(api.engine.held_by("ann")) == 1  # the retry released nothing more
    opp = first.json()["released"][0]["id"]
    body = {"memberId": "ann", "outcome": "won"}
    done = api.call("POST", f"/api/v1/opportunities/{opp}/resolve", "ann", body, headers=key)
    assert done.status_code == 422 and "another call" in done.json()["error"]  # refused
    rkey = {"Idempotency-Key": "resolve-1"}
    done = api.call("POST", f"/api/v1/opportunities/{opp}/resolve", "ann", body, headers=rkey)
    # the query parameter (what a Salesforce flow sends) is the same key
    path = f"/api/v1/opportunities/{opp}/resolve?idempotencyKey=resolve-1"
    redo = api.call("POST", path, "ann", body)
    assert done.status_code == redo.status_code == 200 and redo.json() == done.json()
    # keys are scoped to the token: bob's same key is bob's own call
    other = api.call("POST", "/api/v1/members/bob/pull", "bob", headers=key)
    assert other.status_code == 200 and other.json()["released"][0]["id"] != opp


def test_pull_with_nothing_eligible_says_why(api: Api) -> None:
    api.engine.upsert_members([Member("ann", "Ann", Role.INSIDE_SALES, wip_limit=1)])
    assert len(api.call("POST", "/api/v1/members/ann/pull", "ann").json()["released"]) == 1
    r = api.call("POST", "/api/v1/members/ann/pull", "ann")
    assert r.status_code == 200
    assert r.json()["released"] == [] and "WIP" in r.json()["reason"].upper()


def test_route_accept_and_complete_a_task(api: Api) -> None:
    r = api.call(
        "POST", "/api/v1/tasks", "ann", {"id": "t-1", "kind": "quote", "accountId": "acct-1"}
    )
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["status"] == "assigned" and task["assigneeId"] == "cs"
    assert api.call("GET", "/api/v1/members/cs/work", "cs").json()["tasks"][0]["id"] == "t-1"
    accepted = api.call("POST", "/api/v1/tasks/t-1/accept", "cs", {"memberId": "cs"})
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    done = api.call("POST", "/api/v1/tasks/t-1/complete", "integration", {"memberId": "cs"})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert done.json()["completedAt"] == MONDAY.isoformat()


def test_propose_book_reschedule_and_cancel(api: Api) -> None:
    proposal = api.call("POST", "/api/v1/proposals", "cy", {"request": _meeting(), "limit": 3})
    assert proposal.status_code == 200, proposal.text
    slots = proposal.json()["slots"]
    assert slots and {s["memberId"] for s in slots} == {"fay"}  # cy's own field rep only
    best = slots[0]
    booked = api.call(
        "POST",
        "/api/v1/bookings",
        "cy",
        {"request": _meeting(), "memberId": "fay", "start": best["start"]},
    )
    assert booked.status_code == 200, booked.text
    assert (booked.json()["by"], booked.json()["status"]) == ("cy", "booked")
    later = (datetime.fromisoformat(best["start"]) + timedelta(days=1)).isoformat()
    moved = api.call("POST", "/api/v1/bookings/req-1/reschedule", "cy", {"start": later})
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == datetime.fromisoformat(later)
    gone = api.call("POST", "/api/v1/bookings/req-1/cancel", "cy", {"reason": "client ill"})
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    again = api.call("POST", "/api/v1/bookings/req-1/cancel", "cy")
    assert again.status_code == 409 and again.json()["code"] == "WrongState"


def test_an_integration_books_for_anyone_but_must_say_who(api: Api) -> None:
    start = (MONDAY + timedelta(days=1, hours=2)).isoformat()
    body = {"request": _meeting(), "memberId": "gus", "start": start}
    missing = api.call("POST", "/api/v1/bookings", "integration", body)
    assert missing.status_code == 422 and "by" in missing.json()["error"]
    ok = api.call("POST", "/api/v1/bookings", "integration", {**body, "by": "dee"})
    assert ok.status_code == 200 and ok.json()["by"] == "dee"
    clash = api.call(
        "POST",
        "/api/v1/bookings",
        "integration",
        {**body, "request": _meeting("req-2"), "by": "dee"},
    )
    assert clash.status_code == 409 and clash.json()["code"] == "RuleViolation"


def test_metrics(api: Api, clock: FakeClock) -> None:
    opp = api.call("POST", "/api/v1/members/ann/pull", "ann").json()["released"][0]
    clock.advance(hours=1)
    api.call(
        "POST",
        f"/api/v1/opportunities/{opp['id']}/resolve",
        "ann",
        {"memberId": "ann", "outcome": "won"},
    )
    r = api.call("GET", "/api/v1/metrics", "bob", params={"days": 1})
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["outcomes"] == {"won": 1} and m["hitRate"] == 1.0
    assert m["pullsPerMemberDay"] == {"ann": 1.0} and m["queue"]["level"] == 5
    assert api.call("GET", "/api/v1/metrics", "bob", params={"days": 0}).status_code == 422
    assert api.call("GET", "/api/v1/metrics", "bob", params={"days": "x"}).status_code == 422


def test_replenish_and_sweep_for_admins(api: Api, clock: FakeClock) -> None:
    api.engine.add_to_backlog([Opportunity("late-1", "acct-x")])
    r = api.call("POST", "/api/v1/queue/replenish", "admin")
    assert r.status_code == 200 and r.json()["moved"] == ["late-1"]
    pulled = api.call("POST", "/api/v1/members/ann/pull", "ann").json()["released"][0]
    clock.advance(days=2)
    swept = api.call("POST", "/api/v1/queue/sweep", "admin")
    assert swept.status_code == 200 and swept.json()["leaseExpired"] == [pulled["id"]]


# --- who may do what ---------------------------------------------------------------------

# (method, path, body) of every operation that needs a token
AUTHENTICATED = [
    ("GET", "/api/v1/queue", None),
    ("POST", "/api/v1/members/ann/pull", None),
    ("POST", "/api/v1/opportunities/opp-1/resolve", {"memberId": "ann", "outcome": "won"}),
    ("POST", "/api/v1/opportunities/opp-1/give-back", {"memberId": "ann"}),
    ("GET", "/api/v1/members/ann/work", None),
    ("POST", "/api/v1/tasks", {"id": "t-9", "kind": "quote", "accountId": "a"}),
    ("POST", "/api/v1/tasks/t-9/accept", {"memberId": "cs"}),
    ("POST", "/api/v1/tasks/t-9/complete", {"memberId": "cs"}),
    ("POST", "/api/v1/proposals", {"request": _meeting()}),
    ("POST", "/api/v1/bookings", {"request": _meeting(), "memberId": "fay", "start": "x"}),
    ("POST", "/api/v1/bookings/req-1/cancel", None),
    ("POST", "/api/v1/bookings/req-1/reschedule", {"start": MONDAY.isoformat()}),
    ("GET", "/api/v1/metrics", None),
    ("POST", "/api/v1/queue/replenish", None),
    ("POST", "/api/v1/queue/sweep", None),
]


def test_every_operation_is_in_the_matrix(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json()
    listed = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if op.get("security") != []
    }
    covered = set()
    for method, path, _ in AUTHENTICATED:
        for template in {p for _, p in listed}:
            parts, real = template.split("/"), path.split("/")
            if len(parts) == len(real) and all(
                a == b or a.startswith("{") for a, b in zip(parts, real, strict=True)
            ):
                covered.add((method, template))
    assert covered == listed


@pytest.mark.parametrize(("method", "path", "body"), AUTHENTICATED)
def test_anonymous_and_bad_tokens_get_401(api: Api, method: str, path: str, body: Any) -> None:
    fake = "spe_0123456789ab_" + "A" * 43
    revoked_token = api.tokens.create(TokenKind.ADMIN)
    api.tokens.revoke(revoked_token[0].id)
    for as_ in (None, fake, "not-a-token", revoked_token[1]):
        r = api.call(method, path, as_, body)
        assert r.status_code == 401, (as_, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["code"] == "Unauthorized"
    r = api.client.request(method, path, headers={"Authorization": "Basic abc"}, json=body)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/members/ann/pull", None),
        ("POST", "/api/v1/opportunities/opp-1/resolve", {"memberId": "ann", "outcome": "won"}),
        ("POST", "/api/v1/opportunities/opp-1/give-back", {"memberId": "ann"}),
        ("GET", "/api/v1/members/ann/work", None),
        ("POST", "/api/v1/tasks/t-9/accept", {"memberId": "ann"}),
        ("POST", "/api/v1/tasks/t-9/complete", {"memberId": "ann"}),
    ],
)
def test_a_member_token_acting_for_someone_else_gets_403(
    api: Api, method: str, path: str, body: Any
) -> None:
    r = api.call(method, path, "bob", body)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "Forbidden"
    assert api.engine.held_by("ann") == []  # nothing happened


def test_an_integration_token_acts_for_the_member_it_names(api: Api) -> None:
    r = api.call("POST", "/api/v1/members/bob/pull", "integration")
    assert r.status_code == 200 and r.json()["released"][0]["ownerId"] == "bob"
    # ...but the engine's own rule still holds: only the holder resolves it
    opp = r.json()["released"][0]["id"]
    wrong = api.call(
        "POST",
        f"/api/v1/opportunities/{opp}/resolve",
        "integration",
        {"memberId": "ann", "outcome": "won"},
    )
    assert wrong.status_code == 409 and wrong.json()["code"] == "WrongOwner"


@pytest.mark.parametrize("who", ["ann", "cy", "integration"])
def test_only_admin_tokens_replenish_and_sweep(api: Api, who: str) -> None:
    for path in ("/api/v1/queue/replenish", "/api/v1/queue/sweep"):
        r = api.call("POST", path, who)
        assert r.status_code == 403 and "admin" in r.json()["error"]


def test_calendars_are_for_their_coordinators(api: Api) -> None:
    start = (MONDAY + timedelta(days=1, hours=2)).isoformat()
    body = {"request": _meeting(), "memberId": "gus", "start": start}
    # cy coordinates fay, not gus
    assert api.call("POST", "/api/v1/bookings", "cy", body).status_code == 403
    assert (
        api.call("POST", "/api/v1/proposals", "cy", {"request": _meeting(), "members": ["gus"]})
    ).status_code == 403
    # a field salesperson does not schedule their own calendar; an inside rep neither
    for who in ("fay", "ann"):
        r = api.call("POST", "/api/v1/bookings", who, {**body, "memberId": "fay"})
        assert r.status_code == 403, who
        assert "coordinator" in r.json()["error"]
    booked = api.call("POST", "/api/v1/bookings", "integration", {**body, "by": "dee"})
    assert booked.status_code == 200
    for action, extra in (("cancel", {}), ("reschedule", {"start": start})):
        r = api.call("POST", f"/api/v1/bookings/req-1/{action}", "cy", extra)
        assert r.status_code == 403, action
    # moving one of cy's bookings to a rep cy does not coordinate is refused too
    mine = api.call(
        "POST",
        "/api/v1/bookings",
        "cy",
        {"request": _meeting("req-3"), "memberId": "fay", "start": start},
    )
    assert mine.status_code == 200, mine.text
    r = api.call(
        "POST", "/api/v1/bookings/req-3/reschedule", "cy", {"start": start, "memberId": "gus"}
    )
    assert r.status_code == 403


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (InvalidValue("x", "y"), 422, "InvalidValue"),
        (ConfigError("x", "y"), 422, "ConfigError"),
        (NotFound("x", "y"), 404, "NotFound"),
        (UnknownMember("m"), 404, "UnknownMember"),
        (RuleViolation("x", "y"), 409, "RuleViolation"),
        (WrongState("x", "y"), 409, "WrongState"),
        (WrongOwner("x", "y"), 409, "WrongOwner"),
        (RoleMayNotPull("m", "cs", ("inside_sales",)), 409, "RoleMayNotPull"),
        (StoreError("x", "y"), 503, "StoreUnavailable"),
        (TransientError("x", "y"), 503, "StoreUnavailable"),
        (SpeError("x", "y"), 400, "SpeError"),
        (KeyError("x"), 500, "Internal"),
    ],
)
def test_errors_map_to_http_codes(exc: BaseException, status: int, code: str) -> None:
    assert error_status(exc) == (status, code)


def test_errors_over_http(api: Api) -> None:
    def check(r: Any, status: int, code: str) -> dict[str, Any]:
        assert r.status_code == status, r.text
        body: dict[str, Any] = r.json()
        assert set(body) == {"error", "fix", "code"} and body["code"] == code
        return body

    check(api.call("POST", "/api/v1/members/nobody/pull", "admin"), 404, "UnknownMember")
    check(api.call("GET", "/api/v1/members/nobody/work", "admin"), 404, "UnknownMember")
    check(
        api.call(
            "POST",
            "/api/v1/opportunities/nope/resolve",
            "admin",
            {"memberId": "ann", "outcome": "won"},
        ),
        404,
        "UnknownOpportunity",
    )
    check(
        api.call("POST", "/api/v1/tasks/nope/complete", "admin", {"memberId": "cs"}),
        404,
        "NotFound",
    )
    check(api.call("POST", "/api/v1/bookings/nope/cancel", "admin", {"by": "cy"}), 404, "NotFound")
    check(api.call("POST", "/api/v1/members/cs/pull", "cs"), 409, "RoleMayNotPull")
    bad = check(
        api.call(
            "POST",
            "/api/v1/opportunities/opp-1/resolve",
            "ann",
            {"memberId": "ann", "outcome": "maybe"},
        ),
        422,
        "InvalidValue",
    )
    assert "body.outcome" in bad["error"] and bad["fix"]
    check(api.call("POST", "/api/v1/members/ann/pull", "ann", {"count": "2"}), 422, "InvalidValue")
    check(api.call("POST", "/api/v1/members/ann/pull", "ann", {"count": 0}), 422, "InvalidValue")
    check(
        api.call("POST", "/api/v1/tasks", "ann", {"id": "t", "kind": "quote"}), 422, "InvalidValue"
    )
    check(api.call("POST", "/api/v1/tasks", "ann", [1, 2]), 422, "InvalidValue")
    check(
        api.call(
            "POST",
            "/api/v1/bookings/req-1/reschedule",
            "admin",
            {"start": "2026-03-03T10:00:00", "by": "cy"},
        ),
        422,
        "InvalidValue",
    )  # no offset
    check(
        api.call(
            "POST",
            "/api/v1/proposals",
            "admin",
            {"request": _meeting(durationMinutes=60, deadline=MONDAY.isoformat())},
        ),
        422,
        "InvalidValue",
    )  # deadline before earliest: the model's own check
    raw = api.client.post(
        "/api/v1/tasks",
        content=b"{not json",
        headers={"Authorization": f"Bearer {api.token['ann']}"},
    )
    check(raw, 400, "BadRequest")
    check(api.call("POST", "/api/v1/tasks", "ann"), 400, "BadRequest")
    check(api.call("GET", "/api/v1/nothing-here", "ann"), 404, "NoSuchPath")
    check(api.call("DELETE", "/api/v1/queue", "ann"), 405, "MethodNotAllowed")


def test_a_bad_token_is_refused_before_the_inputs_are_read(api: Api) -> None:
    """The inputs are checked before the store transaction opens, but a caller without a
    valid token learns nothing about them: 401 first, then 400 or 422."""
    fake = "spe_0123456789ab_" + "A" * 43
    resolve = "/api/v1/opportunities/opp-1/resolve"
    for body, status in (({"memberId": "ann", "outcome": "maybe"}, 422), ([1, 2], 422)):
        assert api.call("POST", resolve, fake, body).status_code == 401
        assert api.call("POST", resolve, None, body).status_code == 401
        assert api.call("POST", resolve, "ann", body).status_code == status
    for as_, status in ((fake, 401), ("ann", 400)):
        headers = {"Authorization": f"Bearer {api.token.get(as_, as_)}"}
        r = api.client.post(resolve, content=b"{not json", headers=headers)
        assert r.status_code == status, r.text
    r = api.call("POST", "/api/v1/members/ann/pull?count=x", fake)
    assert r.status_code == 401


def test_a_call_is_one_store_transaction_with_its_token_check(api: Api) -> None:
    """Pull and resolve read the token inside the unit of work of the engine call: one
    BEGIN per call; a refused call (409) leaves nothing behind and the next one works."""
    statements: list[str] = []
    api.engine.store.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    try:
        r = api.call("POST", "/api/v1/members/ann/pull", "ann")
        assert r.status_code == 200, r.text
        opp = r.json()["released"][0]["id"]
        begins = [s for s in statements if s.startswith("BEGIN")]
        assert len(begins) == 1, statements
        token_read = next(i for i, s in enumerate(statements) if "serve:tokens:" in s)
        assert statements.index(begins[0]) < token_read < statements.index("COMMIT")
        statements.clear()
        body = {"memberId": "bob", "outcome": "won"}
        wrong = api.call("POST", f"/api/v1/opportunities/{opp}/resolve", "bob", body)
        assert wrong.status_code == 409 and wrong.json()["code"] == "WrongOwner", wrong.text
        assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
        assert "COMMIT" not in statements  # refused: rolled back
    finally:
        api.engine.store.conn.set_trace_callback(None)  # type: ignore[attr-defined]
    body = {"memberId": "ann", "outcome": "won"}
    r = api.call("POST", f"/api/v1/opportunities/{opp}/resolve", "ann", body)
    assert r.status_code == 200 and r.json()["outcome"] == "won"


def test_a_null_optional_input_counts_as_absent(api: Api) -> None:
    """Salesforce flows send unset optional inputs as null."""
    r = api.call(
        "POST",
        "/api/v1/tasks",
        "ann",
        {"id": "t-2", "kind": "quote", "accountId": "a", "dueAt": None, "priority": None},
    )
    assert r.status_code == 200 and r.json()["priority"] == 3


def test_a_store_that_is_gone_answers_503(api: Api) -> None:
    api.engine.close()
    r = api.call("GET", "/readyz")
    assert r.status_code == 503 and r.json()["code"] == "StoreUnavailable"
    r = api.call("GET", "/api/v1/queue", "ann")
    assert r.status_code == 503 and r.json()["error"] == "the store is unavailable."
    assert api.call("GET", "/healthz").status_code == 200


# --- tokens ------------------------------------------------------------------------------


def test_tokens_are_stored_hashed_listed_without_secrets_and_revocable(api: Api) -> None:
    info, token = api.tokens.create(TokenKind.MEMBER, "ann", label="softphone")
    assert token.startswith(f"spe_{info.id}_") and len(token) == 4 + 12 + 1 + 43
    with api.engine.unit() as u:
        stored = u.tx.get_meta(PREFIX + info.id)
    assert stored is not None and token not in stored and token.split("_", 2)[2] not in stored
    assert json.loads(stored)["sha256"] == __import__("hashlib").sha256(token.encode()).hexdigest()
    listed = {t.id: t for t in api.tokens.list()}
    assert listed[info.id].label == "softphone" and listed[info.id].member_id == "ann"
    assert token not in json.dumps([t.to_json() for t in listed.values()])
    assert api.tokens.verify(token) == info
    assert api.tokens.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    api.tokens.revoke(info.id)
    assert api.tokens.verify(token) is None
    assert not {t.id: t for t in api.tokens.list()}[info.id].active
    with pytest.raises(WrongState):
        api.tokens.revoke(info.id)
    with pytest.raises(NotFound):
        api.tokens.revoke("ffffffffffff")


def test_token_kinds_and_members_are_checked(api: Api) -> None:
    with pytest.raises(UnknownMember):
        api.tokens.create(TokenKind.MEMBER, "nobody")
    with pytest.raises(InvalidValue):
        api.tokens.create(TokenKind.MEMBER)
    with pytest.raises(InvalidValue):
        api.tokens.create(TokenKind.ADMIN, "ann")
    with pytest.raises(InvalidValue):
        api.tokens.create("root")


def test_no_secret_in_any_log_line_or_error_body(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    revoked_info, revoked = api.tokens.create(TokenKind.INTEGRATION)
    api.tokens.revoke(revoked_info.id)
    wrong = api.token["ann"][:-4] + "ZZZZ"
    secrets = [*api.token.values(), revoked, wrong]
    bodies = []
    for as_ in (*api.token, revoked, wrong, "Bearer " + api.token["admin"]):
        for method, path, body in AUTHENTICATED:
            bodies.append(api.call(method, path, as_, body).text)
    api.engine.close()  # and the 503 path
    bodies.append(api.call("GET", "/api/v1/queue", "ann").text)
    text = caplog.text + "\n".join(bodies)
    assert "Forbidden" in text and "Unauthorized" in text and "StoreUnavailable" in text
    for secret in secrets:
        assert secret not in text
        assert secret.split("_", 2)[-1] not in text


def test_the_command_line_creates_lists_and_revokes(tmp_path: Path, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from spe_serve.cli import serve_app

    monkeypatch.chdir(tmp_path)
    Path("spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n\n[[team]]\nid = "ann"\nname = "Ann"\n'
        'role = "inside_sales"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    made = runner.invoke(serve_app, ["token", "create", "--member", "ann", "--json"])
    assert made.exit_code == 0, made.output
    data = json.loads(made.stdout)
    assert data["kind"] == "member" and data["member_id"] == "ann"
    listed = runner.invoke(serve_app, ["token", "list", "--json"])
    assert listed.exit_code == 0 and data["token"] not in listed.stdout
    assert [t["id"] for t in json.loads(listed.stdout)] == [data["id"]]
    assert runner.invoke(serve_app, ["token", "list"]).stdout.startswith(data["id"])
    both = runner.invoke(serve_app, ["token", "create", "--member", "ann", "--admin"])
    assert both.exit_code == 2 and "exactly one" in both.output
    nobody = runner.invoke(serve_app, ["token", "create", "--member", "zed"])
    assert nobody.exit_code == 1 and "zed" in nobody.output

    with Engine(open_store("sqlite:///spe.db")) as engine:
        client = TestClient(create_app(engine))
        headers = {"Authorization": f"Bearer {data['token']}"}
        assert client.get("/api/v1/members/ann/work", headers=headers).status_code == 200
        assert runner.invoke(serve_app, ["token", "revoke", data["id"]]).exit_code == 0
        assert client.get("/api/v1/members/ann/work", headers=headers).status_code == 401
    again = runner.invoke(serve_app, ["token", "revoke", data["id"]])
    assert again.exit_code == 1 and "already revoked" in again.output


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg_api(clock: FakeClock) -> Iterator[Api]:
    engine = Engine(
        open_store(schema_url()), clock=clock, plugins=Plugins.create(entry_points=False)
    )
    _seed(engine, clock)
    yield Api(engine)
    engine.close()
    drop_test_schemas()


@needs_postgres
@pytest.mark.postgres
def test_postgres_pull_resolve_and_tokens(pg_api: Api) -> None:
    assert pg_api.call("GET", "/readyz").json() == {"status": "ok", "store": "postgresql"}
    opp = pg_api.call("POST", "/api/v1/members/ann/pull", "ann").json()["released"][0]
    r = pg_api.call(
        "POST",
        f"/api/v1/opportunities/{opp['id']}/resolve",
        "ann",
        {"memberId": "ann", "outcome": "won"},
    )
    assert r.status_code == 200 and r.json()["outcome"] == "won"
    assert pg_api.call("POST", "/api/v1/members/ann/pull", "bob").status_code == 403
    info = next(t for t in pg_api.tokens.list() if t.label == "bob")
    pg_api.tokens.revoke(info.id)
    assert pg_api.call("GET", "/api/v1/queue", "bob").status_code == 401


@needs_postgres
@pytest.mark.postgres
def test_postgres_two_apps_on_one_store_never_release_twice(pg_api: Api, clock: FakeClock) -> None:
    """Two replicas (two engines, two apps) pulling at once from one PostgreSQL store."""
    from concurrent.futures import ThreadPoolExecutor

    other = Engine(open_store(pg_api.engine.store.url), clock=clock)
    try:
        second = TestClient(create_app(other))
        headers = {"Authorization": f"Bearer {pg_api.token['integration']}"}

        def pull(i: int) -> list[str]:
            client = pg_api.client if i % 2 else second
            member = "ann" if i % 2 else "bob"
            r = client.post(f"/api/v1/members/{member}/pull", headers=headers)
            assert r.status_code == 200, r.text
            return [o["id"] for o in r.json()["released"]]

        with ThreadPoolExecutor(8) as pool:
            got = [o for ids in pool.map(pull, range(12)) for o in ids]
        # a pull that skipped a row another replica held locked may come back empty
        # (SKIP LOCKED); pulling again afterwards finds what is left
        got += [o for i in range(2) for o in pull(i)]
        assert sorted(got) == sorted(set(got)) and len(got) == 6
    finally:
        other.close()


def test_a_token_cache_trusts_a_valid_token_for_its_time_only(api: Api) -> None:
    import time

    cached = Tokens(api.engine, cache_seconds=0.3)
    info, token = api.tokens.create(TokenKind.INTEGRATION)
    assert cached.verify(token) == info
    api.tokens.revoke(info.id)  # revoked elsewhere (another instance, as another replica)
    assert cached.verify(token) == info  # still trusted, for at most cache_seconds
    time.sleep(0.35)
    assert cached.verify(token) is None
    other_info, other = cached.create(TokenKind.ADMIN)
    assert cached.verify(other) == other_info
    cached.revoke(other_info.id)  # revoked through the same instance: forgotten at once
    assert cached.verify(other) is None
    assert cached.verify(other[:-1] + "x") is None  # nothing cached for a wrong token


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1899-12-31T23:00:00Z"]
)
def test_times_at_the_edge_of_the_calendar_are_refused_not_crashed_on(api: Api, when: str) -> None:
    """Found by schemathesis: a time whose UTC falls outside datetime's range was a 500."""
    r = api.call("POST", "/api/v1/proposals", "admin", {"request": _meeting(earliest=when)})
    assert r.status_code == 422, r.text
    assert "body.request.earliest" in r.json()["error"]


def test_the_document_can_be_exported_for_external_services(
    api: Api, tmp_path: Path, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from spe_serve.cli import serve_app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(
        serve_app, ["serve", "--openapi", "--public-url", "https://spe.example.com/"]
    )
    assert out.exit_code == 0, out.output
    exported = json.loads(out.stdout)
    assert exported["servers"] == [{"url": "https://spe.example.com"}]
    served = api.call("GET", "/openapi.json").json()
    assert {**exported, "servers": served["servers"]} == served
