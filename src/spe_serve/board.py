"""The sales coordinator's week board: their field salespeople's bookings day by day,
a form to ask for slots for a meeting (with the travel each adds), and a button to
book the one chosen. Server-rendered like :mod:`spe_serve.pages`; times are shown and
entered in the coordinator's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from spe_core.engine import Engine
from spe_core.errors import InvalidValue, SpeError
from spe_core.model import AppointmentRequest, Location, Member, Role
from spe_serve.pages import COOKIE, _e, _form, _message, _page, _same_origin
from spe_serve.tokens import TokenInfo, TokenKind, Tokens

__all__ = ["board_routes"]

_FIELDS = ("id", "account", "minutes", "mode", "lat", "lon", "earliest", "deadline")


def _refused(why: str) -> Response:
    return _page("Refused", f"<h1>Refused</h1><p>{_e(why)}</p>", 403)


def _local(text: str, zone: ZoneInfo, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"{name} {text!r} is not a date and time.", "pick one.") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _request(q: dict[str, str], zone: ZoneInfo) -> AppointmentRequest:
    try:
        minutes = int(q.get("minutes", ""))
        lat, lon = (float(q["lat"]), float(q["lon"])) if q.get("lat") and q.get("lon") else (0, 0)
    except ValueError:
        raise InvalidValue(
            "minutes, latitude and longitude must be numbers.", "fix them."
        ) from None
    in_person = q.get("mode") == "in_person"
    return AppointmentRequest(
        id=q.get("id", ""),
        account_id=q.get("account", ""),
        duration=timedelta(minutes=minutes),
        mode=q.get("mode", ""),
        earliest=_local(q.get("earliest", ""), zone, "earliest"),
        deadline=_local(q.get("deadline", ""), zone, "deadline"),
        location=Location(lat, lon) if in_person else None,
    )


def board_routes(engine: Engine, tokens: Tokens) -> list[Route]:
    """The routes of the coordinator's board, under ``/pages/coordinator``."""

    async def coordinator(
        request: Request, given: str | None
    ) -> tuple[Member | None, Response | None]:
        token = request.cookies.get(COOKIE)
        who: TokenInfo | None = await run_in_threadpool(tokens.verify, token) if token else None
        if who is None:
            return None, RedirectResponse("/pages/login", status_code=303)
        member_id = who.member_id if who.kind is TokenKind.MEMBER else given
        if not member_id:
            return None, _page(
                "Week board - SPE",
                "<h1>Week board</h1><p>This token acts for anyone: add "
                "<code>?coordinator=ID</code> to the address.</p>",
            )
        try:
            me = await run_in_threadpool(engine.member, member_id)
        except SpeError as exc:
            return None, _page("Week board - SPE", f"<p class='msg err'>{_e(exc.problem)}</p>", 404)
        if me.role is not Role.SALES_COORDINATOR:
            return None, _refused("The week board is for sales coordinators.")
        return me, None

    def _week(me: Member, monday: date) -> str:
        zone = ZoneInfo(me.time_zone)
        reps = [m for m in engine.members() if m.coordinator_id == me.id and m.active]
        days = [monday + timedelta(d) for d in range(5)]
        start = datetime.combine(monday, datetime.min.time(), tzinfo=zone)
        head = "".join(f"<th>{d:%a %d %b}</th>" for d in days)
        rows = []
        for rep in reps:
            booked = engine.bookings(start, start + timedelta(days=7), rep.id)
            cells = []
            for d in days:
                items = [
                    f"<div>{b.start.astimezone(zone):%H:%M} {_e(b.request.account_id)} "
                    f"({_e(b.request.mode.value.replace('_', ' '))})</div>"
                    for b in sorted(booked, key=lambda b: b.start)
                    if b.start.astimezone(zone).date() == d
                ]
                count = sum(
                    1
                    for b in booked
                    if b.start.astimezone(zone).date() == d and b.request.in_person
                )
                cells.append(
                    f"<td>{''.join(items)}<small class=muted>{count} in person</small></td>"
                )
            rows.append(f"<tr><th>{_e(rep.name)}</th>{''.join(cells)}</tr>")
        body = "".join(rows) or "<tr><td colspan=6 class=muted>No field salespeople.</td></tr>"
        return (
            f"<table id=week><thead><tr><th>Field salesperson</th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )

    def _form_html(q: dict[str, str], who: str) -> str:
        def v(name: str, default: str = "") -> str:
            return _e(q.get(name, default))

        mode = q.get("mode", "in_person")
        options = "".join(
            f"<option value={m}{' selected' if m == mode else ''}>{m.replace('_', ' ')}</option>"
            for m in ("in_person", "conference_call")
        )
        return (
            "<h2>Find a slot</h2><form method=get action='/pages/coordinator' id=propose>"
            f"{who}<input type=hidden name=propose value=1>"
            f"<label>Request id <input name=id required value='{v('id')}'></label> "
            f"<label>Account <input name=account required value='{v('account')}'></label> "
            f"<label>Minutes <input name=minutes type=number min=1 max=720 required "
            f"value='{v('minutes', '60')}'></label> "
            f"<label>Mode <select name=mode>{options}</select></label><br>"
            f"<label>Latitude <input name=lat value='{v('lat')}'></label> "
            f"<label>Longitude <input name=lon value='{v('lon')}'></label><br>"
            f"<label>Earliest <input name=earliest type=datetime-local required "
            f"value='{v('earliest')}'></label> "
            f"<label>Deadline <input name=deadline type=datetime-local required "
            f"value='{v('deadline')}'></label> "
            "<button type=submit id=find>Find slots</button></form>"
        )

    def _slots(me: Member, q: dict[str, str], who: str) -> str:
        zone = ZoneInfo(me.time_zone)
        reps = [m.id for m in engine.members() if m.coordinator_id == me.id and m.active]
        if not reps:
            return "<p class=muted>No field salespeople to propose.</p>"
        proposal = engine.propose(_request(q, zone), members=reps, limit=10)
        hidden = "".join(
            f"<input type=hidden name={f} value='{_e(q.get(f, ''))}'>" for f in _FIELDS
        )
        rows = (
            "".join(
                f"<tr><td>{_e(s.member_id)}</td><td>{s.start.astimezone(zone):%a %d %b %H:%M}</td>"
                f"<td>{round(s.added_travel.total_seconds() / 60)} min</td>"
                f"<td>{s.day_meetings}</td>"
                "<td><form method=post action='/pages/coordinator/book'>"
                f"{who}{hidden}<input type=hidden name=member value='{_e(s.member_id)}'>"
                f"<input type=hidden name=start value='{_e(s.start.isoformat())}'>"
                f"<button type=submit name=book value='{_e(s.member_id)}@{s.start:%Y%m%dT%H%M}'>"
                "Book</button></form></td></tr>"
                for s in proposal.slots
            )
            or "<tr><td colspan=5 class=muted>No slot fits.</td></tr>"
        )
        excluded = "".join(f"<li>{_e(m)}: {_e(r)}</li>" for m, r in proposal.excluded)
        return (
            "<h2>Slots</h2><table id=slots><thead><tr><th>Field salesperson</th><th>Start</th>"
            "<th>Travel added</th><th>Meetings that day</th><th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            + (f"<ul class=muted>{excluded}</ul>" if excluded else "")
        )

    async def board(request: Request) -> Response:
        given = request.query_params.get("coordinator")
        me, refusal = await coordinator(request, given)
        if me is None:
            assert refusal is not None
            return refusal
        q = dict(request.query_params)
        zone = ZoneInfo(me.time_zone)
        today = engine.clock.now().astimezone(zone).date()
        try:
            monday = date.fromisoformat(q["week"]) if q.get("week") else today
        except ValueError:
            monday = today
        monday -= timedelta(monday.weekday())
        who = f"<input type=hidden name=coordinator value='{_e(given)}'>" if given else ""
        slots = ""
        if q.get("propose"):
            try:
                slots = await run_in_threadpool(_slots, me, q, who)
            except SpeError as exc:
                slots = f"<p class='msg err'>{_e(exc.problem)}</p>"
        week = await run_in_threadpool(_week, me, monday)
        return _page(
            "Week board - SPE",
            f"<h1>Week of {monday:%d %b %Y}: {_e(me.name)}'s field salespeople</h1>"
            f"{_message(request)}{week}{_form_html(q, who)}{slots}"
            f"<p class=muted>Times in {_e(me.time_zone)}.</p>",
        )

    async def book(request: Request) -> Response:
        if not _same_origin(request):
            return _refused("A form from another site.")
        form = await _form(request)
        given = form.get("coordinator") or None
        me, refusal = await coordinator(request, given)
        if me is None:
            assert refusal is not None
            return refusal
        back = "/pages/coordinator?" + urlencode({"coordinator": given} if given else {})

        def do() -> str:
            rep = engine.member(form.get("member", ""))
            if rep.coordinator_id != me.id:
                raise PermissionError
            req = _request(form, ZoneInfo(me.time_zone))
            booking = engine.book(req, rep.id, datetime.fromisoformat(form["start"]), by=me.id)
            local = booking.start.astimezone(ZoneInfo(me.time_zone))
            return f"Booked {booking.id} for {rep.name} on {local:%a %d %b %H:%M}."

        try:
            text = await run_in_threadpool(do)
        except PermissionError:
            return _refused("Not one of your field salespeople.")
        except (SpeError, KeyError, ValueError) as exc:
            problem = exc.problem if isinstance(exc, SpeError) else "the form is incomplete."
            return RedirectResponse(f"{back}&msg={quote(problem)}&err=1", status_code=303)
        return RedirectResponse(f"{back}&msg={quote(text)}", status_code=303)

    return [
        Route("/pages/coordinator", board, methods=["GET"]),
        Route("/pages/coordinator/book", book, methods=["POST"]),
    ]
