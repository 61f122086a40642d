"""The ``spe`` command: SPE for CRM admins, without writing Python.

Every command reads ``spe.toml`` (``--config``), prints a readable answer or,
with ``--json``, one JSON document for scripts. Errors are one line saying
what was wrong and one saying how to fix it, never a traceback. Exit codes:
0 done, 1 an SPE rule refused the operation, 2 bad configuration or input,
3 the CRM failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import attrs
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spe_core import config as config_module
from spe_core.adapter import CheckResult
from spe_core.codec import encode
from spe_core.engine import Engine
from spe_core.errors import ConfigError, CrmError, InvalidValue, SpeError, StoreError
from spe_core.plugins import Plugins
from spe_core.store import open_store

__all__ = ["app", "main"]

app = typer.Typer(
    name="spe",
    help="Sales Process Engineering for the CRM you already run: a pull queue, task "
    "routing, calendar rules and flow metrics, kept in step with Salesforce or HubSpot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the spe.toml to read", envvar="SPE_CONFIG")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _fail(exc: SpeError) -> NoReturn:
    code = (
        2
        if isinstance(exc, ConfigError | InvalidValue | StoreError)
        else (3 if isinstance(exc, CrmError) else 1)
    )
    err.print(f"[bold red]error:[/] {escape(exc.problem)}", highlight=False)
    if exc.fix:
        err.print(f"[bold]fix:[/] {escape(exc.fix)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SpeError as exc:
        _fail(exc)


def _load(path: Path) -> config_module.Config:
    if not path.exists() and path == Path("spe.toml"):
        return config_module.Config.default()
    return config_module.load(path)


def _engine(cfg: config_module.Config) -> Engine:
    engine = Engine(
        open_store(cfg.store_url),
        policy=cfg.queue,
        plugins=Plugins.create(),
        routing_table=cfg.routing,
        calendar_rules=cfg.calendar,
        member_settings=cfg.member_settings,
    )
    if cfg.team:  # new members whole; known ones (maybe from the CRM) keep the rest
        engine.upsert_members(cfg.team, supplies={m.id: frozenset() for m in cfg.team})
    engine.apply_member_settings()
    if cfg.buffer_management == "auto":
        engine.use_stored_target()
    return engine


def _buffer_recommendation(engine: Engine, cfg: config_module.Config) -> Any:
    """Buffer management over the configured window of the event log."""
    from spe_core.flow import FlowMetrics, recommend_buffer

    start = engine.clock.now() - timedelta(days=cfg.buffer_window_days)
    metrics = FlowMetrics(cfg.process, engine.policy)
    metrics.feed_all(r for r in engine.store.events() if r.event.at >= start)
    return recommend_buffer(metrics.report(engine.clock.now()).zone_share, engine.policy)


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(_plain(data), indent=2, default=str) + "\n")
    else:
        human()


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return {k: _plain(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    data = encode(value)
    if isinstance(data, dict) and len(data) == 1:
        return next(iter(data.values()))
    return data


# --- set-up ------------------------------------------------------------------------------


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the file")] = Path("spe.toml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented spe.toml with every default."""
    if path.exists() and not force:
        _fail(ConfigError(f"{path} already exists.", "pass --force to overwrite it."))
    path.write_text(config_module.template(), encoding="utf-8")
    console.print(f"wrote [cyan]{path}[/]: edit it, then run [bold]spe check[/].")


@app.command()
def adapters(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """List the installed CRM adapters and which one is enabled."""
    with _errors():
        cfg = _load(config)
        found = Plugins.create().adapters()
    rows: list[dict[str, Any]] = [
        {"name": n, "class": f"{c.__module__}.{c.__qualname__}", "enabled": n == cfg.adapter}
        for n, c in sorted(found.items())
    ]

    def show() -> None:
        table = Table(title="CRM adapters")
        for col in ("name", "class", "enabled"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], r["class"], "yes" if r["enabled"] else "")
        console.print(table)
        if cfg.adapter and cfg.adapter not in found:
            err.print(
                f"[yellow]warning:[/] {escape('[adapter]')} name = {cfg.adapter!r} is not "
                "installed."
            )

    _emit(rows, as_json, show)


def _build_adapter(cfg: config_module.Config) -> Any:
    if not cfg.adapter:
        raise ConfigError(
            "no CRM adapter is enabled.",
            'set [adapter] name = "salesforce" (or "hubspot") in spe.toml.',
        )
    found = Plugins.create().adapters()
    cls = found.get(cfg.adapter)
    if cls is None:
        raise ConfigError(
            f"[adapter] name = {cfg.adapter!r} is not an installed adapter.",
            f"install its package, or use one of: {', '.join(sorted(found)) or 'none'}.",
        )
    return cls.from_config(cfg.adapter_options)


@app.command()
def check(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """Check the configuration, the store and the CRM connection; each problem with its fix."""
    results: list[dict[str, Any]] = []

    def step(name: str, action: Callable[[], str]) -> None:
        try:
            results.append({"check": name, "ok": True, "detail": action()})
        except SpeError as exc:
            results.append({"check": name, "ok": False, "detail": exc.problem, "fix": exc.fix})

    state: dict[str, Any] = {}

    def read_config() -> str:
        state["cfg"] = _load(config)
        return str(config) if config.exists() else "defaults (no spe.toml)"

    step("configuration", read_config)
    if "cfg" in state:
        cfg: config_module.Config = state["cfg"]
        for warning in cfg.routing.warnings():
            results.append({"check": "routing", "ok": True, "detail": "warning: " + warning})
        for problem in cfg.process.problems(cfg.crm_stages):
            results.append(
                {
                    "check": "process map",
                    "ok": False,
                    "detail": problem,
                    "fix": "map the stage under [flow.stages], or give the phase a metric",
                }
            )

        def store() -> str:
            if cfg.store_url.startswith("sqlite:///"):
                path = Path(cfg.store_url.removeprefix("sqlite:///"))
                if not path.exists():  # checking must not create it
                    folder = path.parent if str(path.parent) else Path(".")
                    if not folder.is_dir():
                        raise ConfigError(
                            f"{cfg.store_url}: the folder {folder} does not exist.",
                            "create the folder, or point [store] url elsewhere.",
                        )
                    return f"{cfg.store_url} (created on first use)"
            s = open_store(cfg.store_url)
            try:
                with s.transaction() as tx:
                    state["members"] = tx.members()
            finally:
                s.close()
            return cfg.store_url

        step("store", store)
        for problem in _team_problems(cfg, state.get("members", [])):
            results.append({"check": "team", "ok": True, "detail": "warning: " + problem})
        if cfg.adapter:
            parts: list[CheckResult] = []

            def crm() -> str:
                adapter = _build_adapter(cfg)
                try:
                    problems: list[Any] = list(adapter.check()) if hasattr(adapter, "check") else []
                finally:
                    adapter.close()
                if problems and all(isinstance(p, CheckResult) for p in problems):
                    parts.extend(problems)  # a Checkable adapter: one row per part, below
                    return f"{cfg.adapter}: {len(problems)} parts checked"
                if problems:
                    raise ConfigError(
                        "; ".join(map(str, problems)),
                        "create the missing fields or change the mapping.",
                    )
                return f"{cfg.adapter}: connected, every mapped field exists"

            step("crm", crm)
            for part in parts:  # a part not checked is never shown as ok
                row = {"check": f"crm {part.part}", "ok": part.ok, "detail": part.detail}
                results.append(row if part.fix is None else {**row, "fix": part.fix})
            results.extend(_sync_problems(cfg))
    ok = all(r["ok"] for r in results)

    def show() -> None:
        for r in results:
            mark = "[green]ok[/]" if r["ok"] else "[red]problem[/]"
            console.print(f"{mark}  {r['check']}: {escape(str(r['detail']))}", highlight=False)
            if not r["ok"] and r.get("fix"):
                console.print(f"      fix: {escape(str(r['fix']))}", highlight=False)

    _emit(results, as_json, show)
    if not ok:
        raise typer.Exit(2)


def _sync_problems(cfg: config_module.Config) -> list[dict[str, Any]]:
    """What the sync would quarantine at every run, found before one: adapter streams
    it cannot apply, and a status mapping naming values that are not SPE statuses."""
    from spe_core.inbound import STATUS_MAPPING_FIX, status_mapping_problems
    from spe_core.sync import UNKNOWN_STREAM_FIX, stream_problems

    found: list[dict[str, Any]] = []

    def problem(check: str, detail: str, fix: str) -> None:
        found.append({"check": check, "ok": False, "detail": detail, "fix": fix})

    fields = cfg.adapter_options.get("fields")
    mapping = fields.get("status_values") if isinstance(fields, dict) else None
    if isinstance(mapping, dict):
        where = f"[adapter.{cfg.adapter}.fields] status_values"
        problems = status_mapping_problems(mapping, where)
        for detail in problems:
            problem("status mapping", detail, STATUS_MAPPING_FIX)
        if not problems:
            found.append({"check": "status mapping", "ok": True, "detail": "only SPE statuses"})
    try:
        adapter = _build_adapter(cfg)
    except SpeError:
        return found  # the crm check above says why
    try:
        streams = list(adapter.streams())
    finally:
        adapter.close()
    problems = stream_problems(cfg.adapter, streams)
    for detail in problems:
        problem("streams", detail, UNKNOWN_STREAM_FIX)
    if not problems:
        names = ", ".join(spec.name for spec in streams)
        found.append({"check": "streams", "ok": True, "detail": f"the sync applies each: {names}"})
    return found


def _team_problems(cfg: config_module.Config, stored: list[Any]) -> list[str]:
    """Warnings about the team SPE will work with: the stored members (a CRM sync's)
    with spe.toml's [[team]] values applied, plus the complete [[team]] members."""
    from spe_core.calendar import coordinator_problems

    settings = {s.member_id: s for s in cfg.member_settings}
    team = {m.id: m for m in cfg.team}
    for member in stored:
        team[member.id] = settings[member.id].apply(member) if member.id in settings else member
    problems = [
        f"[[team]] id {member_id!r} matches no member yet: after `spe sync` the CRM's "
        "members are listed by `spe team` (use the CRM user or owner id)"
        for member_id in sorted(set(settings) - set(team))
    ]
    return problems + coordinator_problems(sorted(team.values(), key=lambda m: m.id))


# --- the queue -----------------------------------------------------------------------------


@app.command()
def replenish(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """The morning top-up: move the best backlog items into the queue, up to target.

    With [queue] buffer_management = "auto", buffer management first adjusts the
    target (up or down by a third, with the evidence recorded as an event).
    """
    with _errors():
        cfg = _load(config)
        engine = _engine(cfg)
        adjusted = None
        if cfg.buffer_management == "auto":
            rec = _buffer_recommendation(engine, cfg)
            if rec.action != "keep":
                engine.set_target(rec.recommended_target, rec.evidence)
                adjusted = rec
        result = engine.replenish()
    plan = result.plan

    def show() -> None:
        if adjusted is not None:
            console.print(
                f"buffer management: target {adjusted.current_target} -> "
                f"{adjusted.recommended_target} ({escape(adjusted.evidence)})"
            )
        console.print(
            f"queue {plan.level_before} -> {plan.level_after} of target {plan.target} "
            f"({plan.zone_after.value}); moved {len(result.moved)}; Promotions must still "
            f"produce {plan.shortfall}."
        )

    _emit(
        {"plan": plan, "moved": [o.id for o in result.moved], "target_adjusted": adjusted},
        as_json,
        show,
    )


@app.command("queue")
def queue_status(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """The buffer: level, target, zone, backlog and the oldest queued item."""
    with _errors():
        cfg = _load(config)
        engine = _engine(cfg)
        status = engine.queue_status()
        rec = _buffer_recommendation(engine, cfg)

    def show() -> None:
        colour = {"green": "green", "yellow": "yellow", "red": "red"}[status.zone.value]
        console.print(
            f"queue [bold]{status.level}[/] of {status.target} "
            f"([{colour}]{status.zone.value}[/]); backlog {status.backlog}; held "
            f"{status.released}; oldest queued {status.oldest_queued_at or '-'}; "
            f"shortfall {status.shortfall}"
        )
        console.print(
            f"buffer management ({cfg.buffer_management}): {rec.action} the target "
            f"({rec.current_target} -> {rec.recommended_target}); "
            f"{escape(rec.evidence)}"
        )

    _emit({**_plain(status), "buffer": _plain(rec)}, as_json, show)


@app.command()
def team(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """The team SPE works with: ids (the CRM's, for [[team]] tables), roles and
    the attributes the rules use."""
    with _errors():
        cfg = _load(config)
        members = _engine(cfg).members()
    configured = {s.member_id for s in cfg.member_settings}
    rows: list[dict[str, Any]] = [
        {
            "id": m.id,
            "name": m.name,
            "role": m.role.value,
            "active": m.active,
            "skills": sorted(m.skills),
            "wip_limit": m.wip_limit,
            "time_zone": m.time_zone,
            "coordinator_id": m.coordinator_id,
            "home_base": None if m.home_base is None else m.home_base.address or "set",
            "crm_ids": dict(m.external_ids),
            "in_spe_toml": m.id in configured,
        }
        for m in members
    ]

    def show() -> None:
        table = Table(title=f"team ({len(rows)} members)")
        for column in ("id", "name", "role", "skills", "WIP", "time zone", "coordinator", "home"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                escape(row["id"]) + (" *" if row["in_spe_toml"] else ""),
                escape(row["name"]) + ("" if row["active"] else " (inactive)"),
                row["role"],
                escape(", ".join(row["skills"])) or "-",
                str(row["wip_limit"] or "-"),
                row["time_zone"],
                escape(row["coordinator_id"] or "-"),
                escape(row["home_base"] or "-"),
            )
        console.print(table)
        console.print("* set in spe.toml's [[team]] (see docs/team.md)")

    _emit(rows, as_json, show)


@app.command()
def pull(
    member: Annotated[str, typer.Argument(help="the member id pulling")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="how many")] = 1,
    config: ConfigOption = Path("spe.toml"),
    as_json: JsonOption = False,
) -> None:
    """Pull the next opportunity (or several) for an inside salesperson."""
    with _errors():
        result = _engine(_load(config)).pull(member, count)

    def show() -> None:
        for opp in result.released:
            console.print(
                f"[green]released[/] {opp.id} (account {opp.account_id}, tier "
                f"{opp.tier}, score {opp.score:g}) to {member}"
            )
        if result.reason:
            console.print(f"[yellow]{result.reason}[/]")

    _emit(result, as_json, show)
    if not result.released:
        raise typer.Exit(1)


@app.command()
def resolve(
    opportunity: Annotated[str, typer.Argument(help="the opportunity id")],
    member: Annotated[str, typer.Argument(help="the member who holds it")],
    outcome: Annotated[
        str, typer.Argument(help="won, lost, disqualified, appointment_set or nurture")
    ],
    config: ConfigOption = Path("spe.toml"),
    as_json: JsonOption = False,
) -> None:
    """Close an opportunity a member holds, with its outcome."""
    with _errors():
        opp = _engine(_load(config)).resolve(opportunity, member, outcome)
    _emit(opp, as_json, lambda: console.print(f"{opp.id}: {outcome}"))


@app.command()
def route(
    kind: Annotated[str, typer.Argument(help="the task kind, e.g. quote, admin, complaint")],
    account: Annotated[str, typer.Argument(help="the account the task is for")],
    priority: Annotated[int, typer.Option(min=1, max=4, help="1 urgent .. 4 low")] = 3,
    task_id: Annotated[str | None, typer.Option("--id", help="the task id (default: new)")] = None,
    config: ConfigOption = Path("spe.toml"),
    as_json: JsonOption = False,
) -> None:
    """Route a transactional task to a specialist (never to a salesperson)."""
    import uuid
    from datetime import UTC, datetime

    from spe_core.model import Task

    with _errors():
        engine = _engine(_load(config))
        task = engine.route_task(
            Task(
                task_id or f"task-{uuid.uuid4().hex[:12]}",
                kind,
                account,
                datetime.now(UTC),
                priority=priority,
            )
        )

    def show() -> None:
        if task.assignee_id:
            console.print(
                f"{task.id} ({task.kind}) -> [green]{task.assignee_id}[/]; accept by "
                f"{task.accept_by}, complete by {task.complete_by}"
            )
        else:
            role = task.queue_role.value if task.queue_role else "?"
            console.print(
                f"{task.id} ({task.kind}) waits in the {role} queue: "
                f"{escape(task.unassigned_reason or '')}"
            )

    _emit(task, as_json, show)


# --- the calendar ---------------------------------------------------------------------------


def _when(value: str, what: str) -> Any:
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(
            f"{what} {value!r} is not an ISO date-time.",
            "write it like 2026-12-07T09:00+01:00 (a time without offset is read as UTC).",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _request(
    request_id: str | None,
    account: str,
    minutes: int,
    lat: float | None,
    lon: float | None,
    address: str | None,
    earliest: str | None,
    deadline: str | None,
    days: int,
) -> Any:
    import uuid
    from datetime import UTC, datetime

    from spe_core.model import AppointmentRequest, Location

    start = _when(earliest, "--earliest") if earliest else datetime.now(UTC)
    end = _when(deadline, "--deadline") if deadline else start + timedelta(days=days)
    in_person = lat is not None or lon is not None
    if in_person and (lat is None or lon is None):
        raise InvalidValue(
            "an in-person meeting needs both --lat and --lon.",
            "give the customer's site as --lat 48.14 --lon 11.58 (or neither for a call).",
        )
    return AppointmentRequest(
        request_id or f"appt-{uuid.uuid4().hex[:12]}",
        account,
        timedelta(minutes=minutes),
        "in_person" if in_person else "conference_call",
        start,
        end,
        location=Location(lat, lon, address) if in_person else None,
    )


AccountArg = Annotated[str, typer.Argument(help="the account the meeting is with")]
MinutesOpt = Annotated[int, typer.Option("--minutes", min=5, max=720, help="meeting length")]
LatOpt = Annotated[float | None, typer.Option("--lat", help="customer site latitude (in person)")]
LonOpt = Annotated[float | None, typer.Option("--lon", help="customer site longitude (in person)")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="customer site address")]
EarliestOpt = Annotated[
    str | None, typer.Option("--earliest", help="earliest start, ISO (default: now)")
]
DeadlineOpt = Annotated[str | None, typer.Option("--deadline", help="latest end, ISO")]
DaysOpt = Annotated[int, typer.Option("--days", min=1, help="range in days without --deadline")]
IdOpt = Annotated[str | None, typer.Option("--id", help="the request id (default: new)")]


@app.command()
def propose(
    account: AccountArg,
    minutes: MinutesOpt = 60,
    lat: LatOpt = None,
    lon: LonOpt = None,
    address: AddressOpt = None,
    earliest: EarliestOpt = None,
    deadline: DeadlineOpt = None,
    days: DaysOpt = 7,
    request_id: IdOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="slots to show")] = 10,
    config: ConfigOption = Path("spe.toml"),
    as_json: JsonOption = False,
) -> None:
    """Ranked slots for a meeting across field (and, for calls, inside) salespeople.

    In person when --lat/--lon give the customer's site, else a conference call.
    Slots rank by least added travel, then earliest, then evening out meetings.
    """
    with _errors():
        request = _request(
            request_id, account, minutes, lat, lon, address, earliest, deadline, days
        )
        engine = _engine(_load(config))
        proposal = engine.propose(request, limit=limit)
        zones = {m.id: m.zone for m in engine.members()}

    def show() -> None:
        table = Table(title=f"slots for {request.id} ({request.mode.value}, {minutes} min)")
        for col in ("member", "start", "end", "added travel", "that day", "that week"):
            table.add_column(col)
        for slot in proposal.slots:
            zone = zones.get(slot.member_id, UTC)  # times on the member's clock
            table.add_row(
                slot.member_id,
                slot.start.astimezone(zone).isoformat(timespec="minutes"),
                slot.end.astimezone(zone).isoformat(timespec="minutes"),
                f"{slot.added_travel.total_seconds() / 60:.0f} min",
                str(slot.day_meetings),
                str(slot.week_meetings),
            )
        console.print(table)
        for member_id, why in proposal.excluded:
            console.print(f"[yellow]left out[/] {member_id}: {escape(why)}", highlight=False)

    _emit(proposal, as_json, show)
    if not proposal.slots:
        raise typer.Exit(1)


@app.command()
def book(
    account: AccountArg,
    member: Annotated[str, typer.Argument(help="the salesperson whose calendar gets it")],
    start: Annotated[str, typer.Argument(help="the start, ISO (e.g. 2026-12-07T10:00+01:00)")],
    by: Annotated[str, typer.Option("--by", help="the sales coordinator booking it")],
    minutes: MinutesOpt = 60,
    lat: LatOpt = None,
    lon: LonOpt = None,
    address: AddressOpt = None,
    earliest: EarliestOpt = None,
    deadline: DeadlineOpt = None,
    days: DaysOpt = 7,
    request_id: IdOpt = None,
    config: ConfigOption = Path("spe.toml"),
    as_json: JsonOption = False,
) -> None:
    """Book a meeting in a salesperson's calendar, re-checked against every calendar rule."""
    with _errors():
        request = _request(
            request_id, account, minutes, lat, lon, address, earliest, deadline, days
        )
        engine = _engine(_load(config))
        booking = engine.book(request, member, _when(start, "START"), by=by)
        local = booking.start.astimezone(engine.member(booking.member_id).zone)

    def show() -> None:
        console.print(
            f"[green]booked[/] {booking.id} for {booking.member_id} at "
            f"{local.isoformat(timespec='minutes')} ({booking.request.mode.value}, by {by})"
        )

    _emit(booking, as_json, show)


calendar_app = typer.Typer(help="Calendar checks for sales coordinators.", no_args_is_help=True)
app.add_typer(calendar_app, name="calendar")


@calendar_app.command("validate")
def calendar_validate(
    member: Annotated[
        str | None, typer.Option("--member", help="one member (default: every salesperson)")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="from, ISO (default: now)")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="how many days to check")] = 14,
    config: ConfigOption = Path("spe.toml"),
    as_json: JsonOption = False,
) -> None:
    """Check calendars (e.g. edited by hand in the CRM) against the rules; exit 1 on problems."""
    from datetime import UTC, datetime

    from spe_core.model import Role

    with _errors():
        engine = _engine(_load(config))
        lo = _when(start, "--start") if start else datetime.now(UTC)
        hi = lo + timedelta(days=days)
        ids = (
            [member]
            if member
            else [
                m.id
                for m in engine.members()
                if m.role in (Role.FIELD_SALES, Role.INSIDE_SALES) and m.active
            ]
        )
        found = {mid: engine.validate_calendar(mid, lo, hi) for mid in ids}

    def show() -> None:
        for mid, problems in found.items():
            if not problems:
                console.print(f"[green]ok[/]  {mid}")
            for v in problems:
                console.print(f"[red]{v.rule}[/]  {mid}: {escape(v.reason)}", highlight=False)

    _emit(found, as_json, show)
    if any(found.values()):
        raise typer.Exit(1)


# --- the CRM -----------------------------------------------------------------------------


@app.command()
def sync(
    config: ConfigOption = Path("spe.toml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="read and map, write nothing")] = False,
    as_json: JsonOption = False,
) -> None:
    """Sync with the CRM: read changes, stage SPE's changes, write them in batches."""
    from spe_core.outbox import RetryPolicy
    from spe_core.sync import SyncEngine, SyncSettings

    with _errors():
        cfg = _load(config)
        engine = _engine(cfg)
        adapter = _build_adapter(cfg)
        settings = SyncSettings(
            clock_skew=timedelta(minutes=cfg.sync["clock_skew_minutes"]),
            conflicts=cfg.sync["conflicts"],
            retry=RetryPolicy(max_permanent_failures=cfg.sync["max_permanent_failures"]),
        )
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, disable=as_json, transient=False) as progress:
            tasks: dict[str, Any] = {}

            def tick(phase: str, done: int, total: int | None) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(phase, total=total)
                progress.update(tasks[phase], completed=done, total=total)

            try:
                report = SyncEngine(engine, adapter, settings, progress=tick).run(dry_run=dry_run)
            finally:
                adapter.close()

    def show() -> None:
        _show_sync_report(report, cfg.adapter)

    _emit(report.as_dict(), as_json, show)


_QUARANTINE_SHOWN = 10
_INBOUND_COUNTS = ("read", "applied", "unchanged", "ignored", "quarantined", "conflicts")


def _show_sync_report(report: Any, adapter: str) -> None:
    """The sync report: every inbound count per stream, the outbound counts, and why
    records were ignored or quarantined."""
    dry = report.dry_run
    title = f"sync with {adapter}" + (" (dry run: what a run would apply)" if dry else "")
    table = Table(title=title, show_edge=False, pad_edge=False)
    table.add_column("inbound", no_wrap=True)
    for col in _INBOUND_COUNTS:
        table.add_column(col, justify="right")
    for name, stream in report.streams.items():
        table.add_row(escape(name), *(str(getattr(stream, c)) for c in _INBOUND_COUNTS))
    inbound_quarantined = sum(s.quarantined for s in report.streams.values())
    totals = {c: getattr(report, c) for c in _INBOUND_COUNTS}
    totals["quarantined"] = inbound_quarantined
    table.add_row("[bold]all[/]", *(f"[bold]{totals[c]}[/]" for c in _INBOUND_COUNTS))
    console.print(table)
    staged = "to stage" if dry else "staged"
    console.print(
        f"outbound: {staged} {report.staged}, written {report.written}, retried "
        f"{report.retried}, quarantined {report.quarantined_outbound}, pending {report.pending}",
        highlight=False,
    )
    for reason, count in report.ignored_reasons.items():
        console.print(f"ignored {count}: {escape(reason)}", highlight=False)
    shown = 0
    for name, stream in report.streams.items():
        for crm_id, reason in stream.quarantined_records.items():
            if shown < _QUARANTINE_SHOWN:
                console.print(
                    f"[yellow]quarantined[/] {escape(name)} {escape(crm_id)}: {escape(reason)}",
                    highlight=False,
                )
            shown += 1
    if shown > _QUARANTINE_SHOWN:
        console.print(
            f"... and {shown - _QUARANTINE_SHOWN} more quarantined (--json lists them all).",
            highlight=False,
        )


@app.command()
def report(
    html: Annotated[Path, typer.Option("--html", help="the HTML file to write")] = Path(
        "spe-report.html"
    ),
    config: ConfigOption = Path("spe.toml"),
) -> None:
    """Write the flow report: one self-contained HTML file of charts."""
    from spe_core.report import write_report

    with _errors():
        cfg = _load(config)
        store = open_store(cfg.store_url)
        try:
            path = write_report(store.events(), html, cfg.queue)
        finally:
            store.close()
    console.print(f"wrote [cyan]{escape(str(path))}[/]")


@app.command()
def emulator(
    crm: Annotated[str, typer.Argument(help="salesforce or hubspot")],
    port: Annotated[
        int | None,
        typer.Option(help="port to listen on (default: the last start's, else a free one)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the demo org")] = 7,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="where its CA, credentials and port are kept "
            "(default ~/.local/state/spe/emulator/CRM)"
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="new credentials, CA and port (the old block stops)")
    ] = False,
) -> None:
    """Run a local CRM emulator seeded with a demo org, until Ctrl-C; it prints the spe.toml
    block and the exports that point spe at it, valid across restarts."""
    import importlib

    if crm not in ("salesforce", "hubspot"):
        _fail(InvalidValue(f"there is no {crm!r} emulator.", "use salesforce or hubspot."))
    module = importlib.import_module(f"spe_adapters.{crm}.emulator.server")
    args = ["--seed", str(seed)]
    args += ["--port", str(port)] if port is not None else []
    args += ["--state-dir", str(state_dir)] if state_dir is not None else []
    args += ["--reset"] if reset else []
    code = module.main(args)
    raise typer.Exit(int(code or 0))


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    store: Annotated[
        str | None, typer.Option(help="store URL (default: a temp SQLite file)")
    ] = None,
    crm: Annotated[
        str, typer.Option(help="the CRM emulator to sync with: salesforce, hubspot or none")
    ] = "salesforce",
    days: Annotated[int, typer.Option(min=1, max=60, help="working days to simulate")] = 5,
    report: Annotated[Path, typer.Option("--report", help="where to write the HTML report")] = Path(
        "spe-report.html"
    ),
) -> None:
    """Run the demo: a simulated week of SPE on the embedded SQLite store, kept in step
    with a local CRM emulator (Salesforce by default), with the HTML report at the end."""
    from spe_demo import main as run_demo  # the demo lives outside the core

    if crm not in ("salesforce", "hubspot", "none"):
        _fail(InvalidValue(f"--crm {crm!r} is not known.", "use salesforce, hubspot or none."))
    args = ["--seed", str(seed), "--crm", crm, "--days", str(days), "--report", str(report)]
    raise typer.Exit(run_demo(args + (["--store", store] if store else [])))


config_app = typer.Typer(help="Configuration helpers.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown), generated from the schema."""
    sys.stdout.write(config_module.reference_markdown())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spe`` console script."""
    try:
        app(args=argv, prog_name="spe", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
