"""Server-rendered pages: a rep's page (my work, pull next, resolve) and a manager's
live page (the queue's level and zone, flow figures, the sync's backlog and quarantine).

Plain HTML forms, no JavaScript, no external CSS or fonts, so the pages work offline
and behind any proxy. Signing in posts a token (from ``spe token create``) once; it is
kept in an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/pages`` (``Secure``
over HTTPS), so no script can read it and no other site can post a form with it. Form
posts whose ``Origin`` names another site are refused as well.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from spe_core.engine import Engine
from spe_core.errors import SpeError
from spe_core.model import Opportunity, Outcome, Role, Task
from spe_serve.tokens import TokenInfo, TokenKind, Tokens

__all__ = ["page_routes"]

COOKIE = "spe_session"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2733;
background:#f6f8fa}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #d0d7de;padding:.4rem .6rem;text-align:left}
button{background:#0b6bcb;color:#fff;border:0;border-radius:4px;padding:.45rem 1rem;
cursor:pointer}
.msg{padding:.6rem 1rem;border-radius:4px;background:#e6f4ea;border:1px solid #9bd3ae}
.err{background:#fdecea;border-color:#f5a9a2}
.muted{color:#57606a}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, status: int = 200, refresh: int | None = None) -> HTMLResponse:
    again = "" if refresh is None else f"<meta http-equiv=refresh content={refresh}>"
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8>{again}"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<title>{_e(title)}</title><link rel=icon href="data:,"><style>{_STYLE}</style>'
        "</head>"
        f"<body>{body}</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
    )


# no scripts at all; styles only from the page itself
_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; img-src 'self' data:"


def _message(request: Request) -> str:
    text = request.query_params.get("msg")
    if not text:
        return ""
    kind = "msg err" if request.query_params.get("err") else "msg"
    return f'<p class="{kind}" role="status">{_e(text[:500])}</p>'


def _back(path: str, message: str, error: bool = False) -> RedirectResponse:
    url = f"{path}?msg={quote(message)}" + ("&err=1" if error else "")
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """A posted form (``application/x-www-form-urlencoded``, what these pages send)."""
    body = await request.body()
    return dict(parse_qsl(body[:65536].decode("utf-8", "replace"), keep_blank_values=True))


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def page_routes(engine: Engine, tokens: Tokens, adapter: str | None = None) -> list[Route]:
    """The routes of the pages, under ``/pages`` (``adapter``: the CRM adapter whose sync
    the manager's page shows)."""

    async def principal(request: Request) -> TokenInfo | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        return await run_in_threadpool(tokens.verify, token)

    def member_of(request: Request, who: TokenInfo) -> str | None:
        if who.kind is TokenKind.MEMBER:
            return who.member_id
        return request.query_params.get("member") or None

    async def login_form(request: Request) -> Response:
        return _page(
            "Sign in - SPE",
            "<h1>Sign in</h1>" + _message(request) + '<form method=post action="/pages/login">'
            "<label>Token <input name=token type=password autocomplete=off required "
            "size=60></label> <button type=submit id=sign-in>Sign in</button></form>"
            "<p class=muted>Ask your administrator for a token (<code>spe token create "
            "--member YOUR-ID</code>).</p>",
        )

    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return _page("Refused", "<h1>Refused</h1><p>A form from another site.</p>", 403)
        form = await _form(request)
        token = str(form.get("token", "")).strip()
        who = await run_in_threadpool(tokens.verify, token) if token else None
        if who is None:
            return _back("/pages/login", "That token is unknown, malformed or revoked.", True)
        home = "/pages/manager"
        if who.kind is TokenKind.MEMBER:
            assert who.member_id is not None
            me = await run_in_threadpool(engine.member, who.member_id)
            coordinates = me.role is Role.SALES_COORDINATOR
            home = "/pages/coordinator" if coordinates else "/pages/rep"
        response = RedirectResponse(home, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/pages",
            max_age=12 * 3600,
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/pages/login", status_code=303)
        response.delete_cookie(COOKIE, path="/pages")
        return response

    def _opportunity_row(o: Opportunity, member: str) -> str:
        options = "".join(f"<option value={_e(v.value)}>{_e(v.value)}</option>" for v in Outcome)
        lease = o.lease_expires_at.strftime("%H:%M UTC") if o.lease_expires_at else ""
        return (
            f"<tr><td>{_e(o.id)}</td><td>{_e(o.account_id)}</td><td>{o.tier}</td>"
            f"<td>{_e(lease)}</td><td>"
            '<form method=post action="/pages/rep/resolve">'
            f"<input type=hidden name=opportunity value={_e(o.id)}>"
            f"<input type=hidden name=member value={_e(member)}>"
            f'<select name=outcome aria-label="outcome of {_e(o.id)}">{options}</select> '
            f'<button type=submit name=resolve value="{_e(o.id)}">Resolve</button></form>'
            "</td></tr>"
        )

    def _task_row(t: Task) -> str:
        due = t.complete_by.strftime("%Y-%m-%d %H:%M UTC") if t.complete_by else ""
        return (
            f"<tr><td>{_e(t.id)}</td><td>{_e(t.kind)}</td><td>{_e(t.account_id)}</td>"
            f"<td>{_e(t.status.value)}</td><td>{_e(due)}</td></tr>"
        )

    def _rep_body(member: str) -> str:
        me = engine.member(member)
        held = engine.held_by(member)
        tasks = engine.open_tasks(member)
        status = engine.queue_status()
        opps = "".join(_opportunity_row(o, member) for o in held) or (
            "<tr><td colspan=5 class=muted>Nothing in hand. Pull the next one when ready.</td></tr>"
        )
        task_rows = "".join(_task_row(t) for t in tasks) or (
            "<tr><td colspan=5 class=muted>No open tasks.</td></tr>"
        )
        return (
            f"<h2>My opportunities</h2><table id=opportunities><thead><tr><th>Opportunity</th>"
            "<th>Account</th><th>Tier</th><th>Lease ends</th><th>Outcome</th></tr></thead>"
            f"<tbody>{opps}</tbody></table>"
            '<form method=post action="/pages/rep/pull" style="margin-top:1rem">'
            f"<input type=hidden name=member value={_e(member)}>"
            "<button type=submit id=pull>Pull next</button></form>"
            f"<p class=muted>Queue: {status.level} waiting (target {status.target}, zone "
            f"{_e(status.zone.value)}). Signed in for {_e(me.name)} ({_e(me.role.value)}).</p>"
            "<h2>My tasks</h2><table id=tasks><thead><tr><th>Task</th><th>Kind</th>"
            "<th>Account</th><th>Status</th><th>Complete by</th></tr></thead>"
            f"<tbody>{task_rows}</tbody></table>"
        )

    async def rep(request: Request) -> Response:
        who = await principal(request)
        if who is None:
            return RedirectResponse("/pages/login", status_code=303)
        member = member_of(request, who)
        if member is None:
            return _page(
                "My work - SPE",
                "<h1>My work</h1><p>This token acts for any member: add "
                "<code>?member=ID</code> to the address.</p>",
            )
        try:
            body = await run_in_threadpool(_rep_body, member)
        except SpeError as exc:
            return _page("My work - SPE", f"<h1>My work</h1><p class='msg err'>{_e(exc)}</p>", 404)
        return _page(
            "My work - SPE",
            f"<h1>My work</h1>{_message(request)}{body}"
            '<form method=post action="/pages/logout"><button type=submit>Sign out</button>'
            "</form>",
        )

    def _action(do: Callable[[str, dict[str, str]], str]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not _same_origin(request):
                return _page("Refused", "<h1>Refused</h1><p>A form from another site.</p>", 403)
            who = await principal(request)
            if who is None:
                return RedirectResponse("/pages/login", status_code=303)
            form = await _form(request)
            member = str(form.get("member", ""))
            if who.kind is TokenKind.MEMBER and member != who.member_id:
                return _page("Refused", "<h1>Refused</h1><p>Not your work.</p>", 403)
            back = "/pages/rep" + (
                "" if who.kind is TokenKind.MEMBER else f"?member={quote(member)}"
            )
            sep = "&" if "?" in back else "?"
            try:
                text = await run_in_threadpool(do, member, form)
            except SpeError as exc:
                url = f"{back}{sep}msg={quote(str(exc.problem))}&err=1"
                return RedirectResponse(url, status_code=303)
            return RedirectResponse(f"{back}{sep}msg={quote(text)}", status_code=303)

        return endpoint

    def pull(member: str, form: dict[str, str]) -> str:
        result = engine.pull(member)
        if not result.released:
            return f"Nothing released: {result.reason}."
        o = result.released[0]
        return f"You have {o.id} (account {o.account_id})."

    def resolve(member: str, form: dict[str, str]) -> str:
        opp = engine.resolve(str(form.get("opportunity", "")), member, str(form.get("outcome", "")))
        return f"{opp.id} resolved: {opp.outcome}."

    def _manager_body() -> str:
        from datetime import timedelta

        from spe_core.flow import FlowMetrics

        status = engine.queue_status()
        now = engine.clock.now()
        flow = FlowMetrics(policy=engine.policy)
        flow.feed_all(r for r in engine.store.events() if r.event.at >= now - timedelta(days=7))
        report = flow.report(now)
        oldest = (
            status.oldest_queued_at.strftime("%Y-%m-%d %H:%M UTC")
            if status.oldest_queued_at
            else "-"
        )
        colour = {"green": "#1a7f37", "yellow": "#9a6700", "red": "#cf222e"}[status.zone.value]
        queue = (
            "<h2>Queue</h2><table id=queue><tbody>"
            f"<tr><th>Level</th><td>{status.level} of {status.target} "
            f'<strong id=zone style="color:{colour}">{_e(status.zone.value)}</strong></td></tr>'
            f"<tr><th>Short of target</th><td>{status.shortfall}</td></tr>"
            f"<tr><th>Backlog</th><td>{status.backlog}</td></tr>"
            f"<tr><th>Pulled, not resolved</th><td>{status.released}</td></tr>"
            f"<tr><th>Oldest waiting since</th><td>{_e(oldest)}</td></tr></tbody></table>"
        )
        hit = "-" if report.hit_rate is None else f"{100 * report.hit_rate:.0f}%"
        sla = "-" if report.sla_attainment is None else f"{100 * report.sla_attainment:.0f}%"
        outcomes = ", ".join(f"{_e(k)} {v}" for k, v in sorted(report.outcomes.items())) or "-"
        pulls = (
            "".join(
                f"<tr><td>{_e(m)}</td><td>{v:.1f}</td></tr>"
                for m, v in sorted(report.pulls_per_member_day.items())
            )
            or "<tr><td colspan=2 class=muted>No pulls yet.</td></tr>"
        )
        flow_html = (
            "<h2>Flow, last 7 days</h2><table id=flow><tbody>"
            f"<tr><th>Outcomes</th><td>{outcomes}</td></tr>"
            f"<tr><th>Hit rate (won of resolved)</th><td>{hit}</td></tr>"
            f"<tr><th>Tasks within SLA</th><td>{sla}</td></tr></tbody></table>"
            "<table id=pulls style='margin-top:.5rem'><thead><tr><th>Member</th>"
            f"<th>Pulls per working day</th></tr></thead><tbody>{pulls}</tbody></table>"
        )
        if adapter is None:
            return queue + flow_html + "<h2>Sync</h2><p class=muted>No CRM adapter set.</p>"
        with engine.unit() as u:
            pending = u.tx.outbox_items(adapter, "pending")
            quarantined = u.tx.quarantined(adapter)
        rows = (
            "".join(
                f"<tr><td>{_e(q.at.strftime('%Y-%m-%d %H:%M'))}</td><td>{_e(q.direction)}</td>"
                f"<td>{_e(q.stream)}</td><td>{_e(q.key)}</td><td>{_e(q.reason)}</td></tr>"
                for q in sorted(quarantined, key=lambda q: q.at, reverse=True)[:50]
            )
            or "<tr><td colspan=5 class=muted>Nothing quarantined.</td></tr>"
        )
        sync = (
            f"<h2>Sync with {_e(adapter)}</h2><p>{len(pending)} change(s) waiting to be "
            f"written to the CRM; {len(quarantined)} record(s) quarantined.</p>"
            "<table id=quarantine><thead><tr><th>When (UTC)</th><th>Direction</th>"
            "<th>Stream</th><th>Record</th><th>Reason</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        return queue + flow_html + sync

    async def manager(request: Request) -> Response:
        who = await principal(request)
        if who is None:
            return RedirectResponse("/pages/login", status_code=303)
        if who.kind is not TokenKind.ADMIN:
            return _page(
                "Refused", "<h1>Refused</h1><p>The manager's page needs an admin token.</p>", 403
            )
        body = await run_in_threadpool(_manager_body)
        return _page(
            "Manager - SPE",
            f"<h1>Queue and flow</h1><p class=muted>Refreshes every 30 seconds.</p>{body}",
            refresh=30,
        )

    return [
        Route("/pages/manager", manager, methods=["GET"]),
        Route("/pages/login", login_form, methods=["GET"]),
        Route("/pages/login", login, methods=["POST"]),
        Route("/pages/logout", logout, methods=["POST"]),
        Route("/pages/rep", rep, methods=["GET"]),
        Route("/pages/rep/pull", _action(pull), methods=["POST"]),
        Route("/pages/rep/resolve", _action(resolve), methods=["POST"]),
    ]
