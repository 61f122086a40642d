"""The rep's page: sign in with a token, see my work, pull next, resolve; through
Starlette's TestClient and, when Playwright and Debian's chromium are there, by
clicking in a real headless Chromium (no console errors, a screenshot that is not
blank)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from spe_core import (
    AppointmentRequest,
    Engine,
    FakeClock,
    Location,
    Member,
    Opportunity,
    Plugins,
    Role,
    Task,
    open_store,
)
from spe_serve.app import create_app
from spe_serve.pages import COOKIE
from spe_serve.tokens import TokenKind, Tokens

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        open_store(f"sqlite:///{tmp_path / 'spe.db'}"),
        clock=FakeClock(NOW),
        plugins=Plugins.create(entry_points=False),
    )
    e.upsert_members(
        [
            Member("ann", "Ann <b>Lee</b>", Role.INSIDE_SALES),
            Member("bob", "Bob", Role.INSIDE_SALES),
            Member("cs", "Cas", Role.CUSTOMER_SERVICE),
        ]
    )
    e.enqueue([Opportunity("opp-1", "acct-<i>1</i>", tier=1), Opportunity("opp-2", "acct-2")])
    yield e
    e.close()


def _signed_in(engine: Engine, member: str = "ann") -> tuple[TestClient, str]:
    _, token = Tokens(engine).create(TokenKind.MEMBER, member)
    client = TestClient(create_app(engine))
    r = client.post("/pages/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/pages/rep"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/pages" in cookie
    return client, token


def test_pages_need_a_signed_in_token(engine: Engine) -> None:
    client = TestClient(create_app(engine))
    r = client.get("/pages/rep", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/pages/login"
    bad = client.post("/pages/login", data={"token": "spe_nope"}, follow_redirects=True)
    assert "unknown, malformed or revoked" in bad.text and COOKIE not in client.cookies
    assert (
        client.post("/pages/rep/pull", data={"member": "ann"}, follow_redirects=False).headers[
            "location"
        ]
        == "/pages/login"
    )


def test_my_work_pull_and_resolve_by_forms(engine: Engine) -> None:
    client, token = _signed_in(engine)
    page = client.get("/pages/rep")
    assert page.status_code == 200 and "Nothing in hand" in page.text
    assert "Ann &lt;b&gt;Lee&lt;/b&gt;" in page.text  # names are escaped
    assert "script-src" not in page.headers["content-security-policy"]  # no scripts at all
    after = client.post("/pages/rep/pull", data={"member": "ann"})
    assert "You have opp-1" in after.text and "acct-&lt;i&gt;1&lt;/i&gt;" in after.text
    assert engine.opportunity("opp-1").owner_id == "ann"
    done = client.post(
        "/pages/rep/resolve", data={"member": "ann", "opportunity": "opp-1", "outcome": "won"}
    )
    assert "opp-1 resolved: won" in done.text and "Nothing in hand" in done.text
    again = client.post(
        "/pages/rep/resolve", data={"member": "ann", "opportunity": "opp-1", "outcome": "won"}
    )
    assert "msg err" in again.text and "not released" in again.text
    assert token not in page.text + after.text + done.text + again.text


def test_a_rep_sees_their_tasks_and_acts_only_for_themselves(engine: Engine) -> None:
    engine.route_task(Task("t-1", "quote", "acct-1"))
    client, _ = _signed_in(engine, "cs")
    assert "t-1" in client.get("/pages/rep").text
    r = client.post("/pages/rep/pull", data={"member": "ann"}, follow_redirects=False)
    assert r.status_code == 403
    assert engine.held_by("ann") == []


def test_forms_from_another_site_are_refused(engine: Engine) -> None:
    client, token = _signed_in(engine)
    evil = {"Origin": "https://evil.example"}
    r = client.post("/pages/rep/pull", data={"member": "ann"}, headers=evil)
    assert r.status_code == 403 and engine.held_by("ann") == []
    assert client.post("/pages/login", data={"token": token}, headers=evil).status_code == 403


def test_signing_out_forgets_the_token(engine: Engine) -> None:
    client, _ = _signed_in(engine)
    client.post("/pages/logout")
    assert COOKIE not in client.cookies
    assert client.get("/pages/rep", follow_redirects=False).status_code == 303


# --- in a real browser -------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")


@pytest.fixture
def live(engine: Engine) -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium: apt-get install chromium (scripts/test does, as root)",
)
def test_the_pull_flow_and_the_managers_page_in_chromium(
    engine: Engine, live: str, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    _, token = Tokens(engine).create(TokenKind.MEMBER, "ann")
    _, admin = Tokens(engine).create(TokenKind.ADMIN)
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.set_content("<html><body></body></html>")
            blank = page.screenshot()  # what an empty page looks like to _variety
            page.goto(f"{live}/pages/login")
            page.fill("input[name=token]", token)
            page.click("#sign-in")
            page.wait_for_url(f"{live}/pages/rep")
            assert "Nothing in hand" in page.inner_text("#opportunities")
            page.click("#pull")
            page.wait_for_selector("text=You have opp-1")
            assert "opp-1" in page.inner_text("#opportunities")
            page.select_option("select[aria-label='outcome of opp-1']", "appointment_set")
            page.click("button[name=resolve][value=opp-1]")
            page.wait_for_selector("text=opp-1 resolved: appointment_set")
            shot = page.screenshot(path=str(tmp_path / "rep.png"), full_page=True)
            page.click("text=Sign out")
            page.fill("input[name=token]", admin)
            page.click("#sign-in")
            page.wait_for_url(f"{live}/pages/manager")
            assert page.inner_text("#zone") == "red"
            assert "appointment_set 1" in page.inner_text("#flow")
            board = page.screenshot(path=str(tmp_path / "manager.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert engine.opportunity("opp-1").outcome is not None
    assert _variety(blank) < 10 < 50 < _variety(shot)  # text, tables, buttons: not blank
    assert _variety(board) > 50


def _variety(png: bytes) -> int:
    """How many different byte values the image's (filtered) pixel rows hold: a blank
    page has a handful, a page with text and colours many."""
    data, at = b"", 8
    while at < len(png):
        length = int.from_bytes(png[at : at + 4], "big")
        kind = png[at + 4 : at + 8]
        if kind == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    return len(set(zlib.decompress(data)))


def test_the_managers_page_shows_queue_flow_and_sync(engine: Engine) -> None:
    from spe_core.outbox import Quarantined

    with engine.unit() as u:
        u.tx.quarantine_put(
            Quarantined("hubspot", "inbound", "deals", "123", "amount <missing>", NOW)
        )
    _, admin = Tokens(engine).create(TokenKind.ADMIN)
    client = TestClient(create_app(engine, adapter="hubspot"))
    r = client.post("/pages/login", data={"token": admin}, follow_redirects=False)
    assert r.headers["location"] == "/pages/manager"
    engine.pull("ann")
    page = client.get("/pages/manager")
    assert page.status_code == 200
    assert "<meta http-equiv=refresh content=30>" in page.text
    assert "2 of 100" not in page.text and "1 of 100" in page.text and ">red<" in page.text
    assert "1 record(s) quarantined" in page.text and "amount &lt;missing&gt;" in page.text
    assert "<td>ann</td><td>1.0</td>" in page.text
    member_client, _ = _signed_in(engine, "bob")
    assert member_client.get("/pages/manager").status_code == 403


# --- the coordinator's week board ---------------------------------------------------------

SITE = Location(51.5, -0.12, "London")
QUERY = {
    "propose": "1",
    "id": "req-1",
    "account": "acct-9",
    "minutes": "60",
    "mode": "in_person",
    "lat": "51.51",
    "lon": "-0.1",
    "earliest": "2026-03-03T09:00",
    "deadline": "2026-03-06T17:00",
}


@pytest.fixture
def field(engine: Engine) -> Engine:
    engine.upsert_members(
        [
            Member("cy", "Cy", Role.SALES_COORDINATOR, time_zone="Europe/London"),
            Member("dee", "Dee", Role.SALES_COORDINATOR),
            Member("fay", "Fay", Role.FIELD_SALES, coordinator_id="cy", home_base=SITE),
            Member("gus", "Gus", Role.FIELD_SALES, coordinator_id="dee", home_base=SITE),
        ]
    )
    for rep in ("fay", "gus"):
        engine.record_busy(rep, [], NOW, NOW + timedelta(days=14))
    return engine


def test_a_coordinator_proposes_and_books_for_their_field_salespeople(field: Engine) -> None:
    _, token = Tokens(field).create(TokenKind.MEMBER, "cy")
    client = TestClient(create_app(field))
    r = client.post("/pages/login", data={"token": token}, follow_redirects=False)
    assert r.headers["location"] == "/pages/coordinator"
    page = client.get("/pages/coordinator", params=QUERY)
    assert page.status_code == 200 and "Fay" in page.text and "Gus" not in page.text
    assert "min</td>" in page.text and "Tue 03 Mar 09:" in page.text
    form = {k: v for k, v in QUERY.items() if k != "propose"}
    start = (
        field.propose(
            AppointmentRequest(
                "req-1",
                "acct-9",
                timedelta(hours=1),
                "in_person",
                datetime(2026, 3, 3, 9, tzinfo=UTC),
                datetime(2026, 3, 6, 17, tzinfo=UTC),
                location=Location(51.51, -0.1),
            ),
            members=["fay"],
        )
        .slots[0]
        .start
    )
    booked = client.post(
        "/pages/coordinator/book", data={**form, "member": "fay", "start": start.isoformat()}
    )
    assert "Booked req-1 for Fay" in booked.text
    assert field.booking("req-1").by == "cy"
    assert "acct-9 (in person)" in booked.text  # on the week board
    again = client.post(
        "/pages/coordinator/book", data={**form, "member": "fay", "start": start.isoformat()}
    )
    assert "msg err" in again.text and "already booked" in again.text
    theirs = client.post(
        "/pages/coordinator/book",
        data={**form, "id": "req-2", "member": "gus", "start": start.isoformat()},
    )
    assert theirs.status_code == 403  # gus is dee's


def test_the_board_is_for_coordinators(field: Engine) -> None:
    client, _ = _signed_in(field, "fay")
    assert client.get("/pages/coordinator").status_code == 403
    anonymous = TestClient(create_app(field))
    assert anonymous.get("/pages/coordinator", follow_redirects=False).status_code == 303


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium: apt-get install chromium (scripts/test does, as root)",
)
def test_proposing_and_booking_by_clicking_in_chromium(
    field: Engine, live: str, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    _, token = Tokens(field).create(TokenKind.MEMBER, "cy")
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{live}/pages/login")
            page.fill("input[name=token]", token)
            page.click("#sign-in")
            page.wait_for_url(f"{live}/pages/coordinator")
            for name in ("id", "account", "lat", "lon", "earliest", "deadline"):
                page.fill(f"#propose input[name={name}]", QUERY[name])
            page.click("#find")
            page.wait_for_selector("#slots")
            assert "min" in page.inner_text("#slots")
            page.click("#slots button[name=book] >> nth=0")
            page.wait_for_selector("text=Booked req-1 for Fay")
            assert "acct-9 (in person)" in page.inner_text("#week")
            shot = page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert field.booking("req-1").member_id == "fay"
    assert _variety(shot) > 50
