"""schemathesis over the published /openapi.json, against the real app on a real SQLite
store: for generated requests to every operation, no 5xx, every response matches its
schema, status code and content type, and authentication is enforced (a successful
call is retried without the token and must then fail)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spe_core import (
    AppointmentRequest,
    Engine,
    FakeClock,
    Location,
    Plugins,
    Task,
    open_store,
)
from spe_serve.api import operations
from spe_serve.app import create_app
from spe_serve.tokens import TokenKind, Tokens
from tests.test_serve import _seed

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    ignored_auth,
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    clock = FakeClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
    engine = Engine(
        open_store(f"sqlite:///{tmp_path / 'spe.db'}"),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
    )
    _seed(engine, clock)
    engine.route_task(Task("t-1", "quote", "acct-1"))
    start = datetime(2026, 3, 3, 10, tzinfo=UTC)
    meeting = AppointmentRequest(
        "req-1",
        "acct-9",
        timedelta(hours=1),
        "in_person",
        start,
        start + timedelta(days=3),
        location=Location(51.51, -0.1),
    )
    engine.book(meeting, "fay", start, by="cy")
    _, token = Tokens(engine).create(TokenKind.ADMIN)
    yield create_app(engine), token
    engine.close()


OPERATIONS = [op.operation_id for op in operations()]
KNOWN = {
    "memberId": ["ann", "bob", "cs", "fay"],
    "opportunityId": [f"opp-{i}" for i in range(6)],
    "taskId": ["t-1"],
    "bookingId": ["req-1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_the_api_keeps_its_published_promises(served: tuple[Any, str], operation_id: str) -> None:
    app, token = served
    operation = schemathesis.openapi.from_asgi("/openapi.json", app).find_operation_by_id(
        operation_id
    )

    @given(case=operation.as_strategy(), known=st.booleans(), data=st.data())
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any, known: bool, data: st.DataObject) -> None:
        if known:  # half the time, name things that exist, so the happy paths run too
            for name, ids in KNOWN.items():
                if name in (case.path_parameters or {}):
                    case.path_parameters[name] = data.draw(st.sampled_from(ids))
                if isinstance(case.body, dict) and name in case.body:
                    case.body[name] = data.draw(st.sampled_from(ids))
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    check()
