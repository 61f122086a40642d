"""The ``spe`` command: SPE for CRM admins, without writing Python.

Every command reads ``spe.toml`` (``--config``), prints a readable answer or,
with ``--json``, one JSON document for scripts. Errors are one line saying
what was wrong and one saying how to fix it, never a traceback (with
``--json``: one object ``{"error", "fix", "code"}`` on stdout). Exit codes:
0 done, 1 an SPE rule refused the operation, 2 bad configuration or input,
3 the CRM failed, 75 the CRM asks to try later, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast
from urllib.parse import unquote

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
from spe_core.errors import (
    ConfigError,
    CrmError,
    InvalidValue,
    NotFound,
    SpeError,
    StoreError,
    TryLater,
)
from spe_core.plugins import Plugins
from spe_core.store import open_store

if TYPE_CHECKING:
    from spe_core.adapter import Adapter

__all__ = ["EXIT_CODES", "app", "main"]

log = logging.getLogger("spe_core.cli")

app = typer.Typer(
    name="spe",
    help="Sales Process Engineering for the CRM you already run: a pull queue, task "
    "routing, calendar rules and flow metrics, kept in step with Salesforce or HubSpot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: "[[team]]" is shown as written
)

_opened: list[Engine] = []


def _close_opened() -> None:
    """Close the engines the command opened, whatever way it ended: a SQLite store then
    folds its write-ahead log back into the file and removes it, a PostgreSQL store ends
    its sessions."""
    while _opened:
        with contextlib.suppress(Exception):
            _opened.pop().close()


@app.callback(help=app.info.help)
def _root(ctx: typer.Context) -> None:
    ctx.call_on_close(_close_opened)
console = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "an SPE rule refused the operation (nothing to pull, wrong owner, ...)",
    2: "bad configuration or input (a usage error)",
    3: "the CRM failed (unreachable, refused the login, a bad certificate, ...)",
    75: "the CRM asks to try later (a daily API limit): nothing lost, run it again then",
    130: "interrupted (Ctrl-C): nothing lost, run it again to continue",
}
INTERRUPTED = "interrupted: nothing lost, run it again to continue"
_interrupted: list[bool] = []  # said so already

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the spe.toml to read", envvar="SPE_CONFIG")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", help="the store URL (default: [store] url of spe.toml)", envvar="SPE_STORE"
    ),
]


def _code(exc: SpeError) -> int:
    if isinstance(exc, TryLater):
        return 75
    if isinstance(exc, CrmError):
        return 3
    if isinstance(exc, ConfigError | InvalidValue | StoreError | NotFound):
        return 2
    return 1


def _say_error(problem: str, fix: str | None, code: int, as_json: bool) -> NoReturn:
    if as_json:
        sys.stdout.write(json.dumps({"error": problem, "fix": fix, "code": code}) + "\n")
    else:
        err.print(f"[bold red]error:[/] {escape(problem)}", highlight=False)
        if fix:
            err.print(f"[bold]fix:[/] {escape(fix)}", highlight=False)
    raise typer.Exit(code)


def _fail(exc: SpeError, as_json: bool = False) -> NoReturn:
    fix = exc.fix
    if isinstance(exc, CrmError) and not fix:
        fix = crm_fix(exc, _crm_in_use[-1] if _crm_in_use else "NAME")
    if isinstance(exc, TryLater) and exc.until is not None:
        fix = f"{fix + ' ' if fix else ''}(the CRM accepts calls again at {exc.until.isoformat()})"
    _say_error(exc.problem, fix, _code(exc), as_json)


@contextmanager
def _errors(as_json: bool = False) -> Iterator[None]:
    try:
        yield
    except SpeError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        _interrupted.append(True)
        _say_error(INTERRUPTED, None, 130, as_json)
    except OSError as exc:  # a file or folder a setting names (a CA bundle, a key file)
        _say_error(
            f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
            "check the files and folders spe.toml names (e.g. ca_bundle) exist and are "
            "readable, then run it again.",
            2,
            as_json,
        )


def _plugins() -> Plugins:
    """The plugins (adapters) the command works with."""
    return Plugins.create()


def _load(path: Path) -> config_module.Config:
    if not path.exists() and path == Path("spe.toml"):
        return config_module.Config.default()
    return config_module.load(path)


def _load_for_store(path: Path, store: str | None) -> config_module.Config:
    """The configuration of a command that works on the store: a missing spe.toml is
    an error (it would work on an unintended store) unless ``--store`` names one."""
    if not path.exists():
        if store is None:
            raise ConfigError(
                f"there is no {path} in {Path.cwd()}: this command needs the store it names.",
                "run `spe init` here to write one (then set [store] url), pass --config "
                "PATH, or pass --store URL (e.g. --store sqlite:///spe.db).",
            )
        cfg = config_module.Config.default()
    else:
        cfg = config_module.load(path)
    return cfg.with_store(store)  # the file's [store] timeout keys apply to --store too


def _engine(cfg: config_module.Config, *, write: bool = True) -> Engine:
    """The engine over the configured store. ``write=False`` (read commands) leaves the
    store as it is: spe.toml's team is applied in memory only (see :func:`_team_view`)."""
    engine = Engine(
        open_store(cfg.open_url),
        policy=cfg.queue,
        plugins=_plugins(),
        routing_table=cfg.routing,
        calendar_rules=cfg.calendar,
        member_settings=cfg.member_settings,
    )
    _opened.append(engine)  # closed when the command ends (see _close_opened)
    if write:
        if cfg.team:  # new members whole; known ones (maybe from the CRM) keep the rest
            engine.upsert_members(cfg.team, supplies={m.id: frozenset() for m in cfg.team})
        engine.apply_member_settings()
    if cfg.buffer_management == "auto":
        engine.use_stored_target()
    return engine


def _team_view(engine: Engine, cfg: config_module.Config) -> list[Any]:
    """The members as a write command would see them: the stored ones with spe.toml's
    [[team]] values applied, computed without writing."""
    from spe_core.team import merge_member

    settings = {s.member_id: s for s in cfg.member_settings}
    members = {m.id: m for m in engine.members()}
    for incoming in cfg.team:
        stored = members.get(incoming.id)
        members[incoming.id] = merge_member(
            stored, incoming, frozenset(), settings.get(incoming.id)
        )
    for member_id, member in list(members.items()):
        if member_id in settings and member_id not in {m.id for m in cfg.team}:
            members[member_id] = merge_member(member, member, frozenset(), settings[member_id])
    return sorted(members.values(), key=lambda m: m.id)


def _buffer_recommendation(engine: Engine, cfg: config_module.Config) -> Any:
    """Buffer management over the configured window of the event log."""
    from spe_core.flow import FlowMetrics, period, recommend_buffer

    start = engine.clock.now() - timedelta(days=cfg.buffer_window_days)
    metrics = FlowMetrics(cfg.process, engine.policy)
    metrics.feed_all(r for r in engine.store.events() if r.event.at >= start)
    report = metrics.report(engine.clock.now())
    # no advice from minutes of history: it waits for one working day of events
    return recommend_buffer(report.zone_share, engine.policy, history=period(report))


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


def _table(title: str | None, *columns: str, **options: Any) -> Table:
    """A table whose cells fold rather than cut: ids and times are never shortened
    with an ellipsis, however narrow the terminal."""
    caption = options.pop("caption", None)
    table = Table(title=title, caption=escape(caption) if caption else None, **options)
    for column in columns:
        table.add_column(escape(column), overflow="fold")
    return table


# --- set-up ------------------------------------------------------------------------------


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the file")] = Path("spe.toml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a commented spe.toml with every default."""
    if path.exists() and not force:
        _fail(ConfigError(f"{path} already exists.", "pass --force to overwrite it."), as_json)
    try:
        path.write_text(config_module.template(), encoding="utf-8")
    except OSError as exc:
        _fail(_unwritable(path, exc), as_json)
    _emit(
        {"wrote": str(path)},
        as_json,
        lambda: console.print(
            f"wrote [cyan]{escape(str(path))}[/]: edit it, then run [bold]spe check[/]."
        ),
    )


def _unwritable(path: Path, exc: OSError) -> InvalidValue:
    if not path.parent.is_dir():
        return InvalidValue(
            f"cannot write {path}: the folder {path.parent} does not exist.",
            "create the folder first, or give a path in an existing folder.",
        )
    return InvalidValue(
        f"cannot write {path}: {exc.strerror or exc}.",
        "give a path you may write to.",
    )


@app.command()
def adapters(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """List the installed CRM adapters and which one is enabled."""
    with _errors(as_json):
        cfg = _load(config)
        found = _plugins().adapters()
    rows: list[dict[str, Any]] = [
        {"name": n, "class": f"{c.__module__}.{c.__qualname__}", "enabled": n == cfg.adapter}
        for n, c in sorted(found.items())
    ]

    def show() -> None:
        table = _table("CRM adapters", "name", "class", "enabled")
        for r in rows:
            table.add_row(escape(r["name"]), escape(r["class"]), "yes" if r["enabled"] else "")
        console.print(table)
        if cfg.adapter and cfg.adapter not in found:
            err.print(
                f"[yellow]warning:[/] {escape('[adapter]')} name = {escape(repr(cfg.adapter))} "
                "is not installed."
            )

    _emit(rows, as_json, show)


_crm_in_use: list[str] = []  # the adapter this run built, for the fixes of its errors


def _build_adapter(cfg: config_module.Config) -> Any:
    if not cfg.adapter:
        raise ConfigError(
            "no CRM adapter is enabled.",
            'set [adapter] name = "salesforce" (or "hubspot") in spe.toml.',
        )
    found = _plugins().adapters()
    cls = found.get(cfg.adapter)
    if cls is None:
        raise ConfigError(
            f"[adapter] name = {cfg.adapter!r} is not an installed adapter.",
            f"install its package, or use one of: {', '.join(sorted(found)) or 'none'}.",
        )
    _crm_in_use.append(cfg.adapter)
    return cls.from_config(cfg.adapter_options)


def crm_fix(exc: CrmError, crm: str) -> str:
    """The fix for a failed CRM call: the adapter's own, else one by the failure's class."""
    from spe_core.errors import AuthenticationFailed, CertificateProblem, CrmUnreachable

    if exc.fix:
        return exc.fix
    table = f"[adapter.{crm}]"
    if isinstance(exc, CrmUnreachable):
        return (
            f"check the CRM's address in {table} and that it is up and reachable from "
            f"here (for the emulator: is `spe emulator {crm}` still running, on that port?)."
        )
    if isinstance(exc, AuthenticationFailed):
        return (
            f"check the credentials: the environment variables {table} names must hold "
            "the current client id, secret or token of an active user or app."
        )
    if isinstance(exc, CertificateProblem):
        return (
            f"set ca_bundle in {table} to the CA file that signed the CRM's certificate "
            "(`spe emulator` prints its own)."
        )
    if isinstance(exc, TryLater):
        return "run it again later: nothing is lost."
    return "try again; if it keeps failing, run `spe check` for the connection's state."


def _row(check: str, status: str, detail: str, fix: str | None = None) -> dict[str, Any]:
    """One line of `spe check`: status is ok, problem, warning or not checked; ``ok`` is
    True only for a part that was checked and found right (or a mere warning)."""
    return {
        "check": check,
        "status": status,
        "ok": status in ("ok", "warning"),
        "detail": detail,
        "fix": fix,
    }


def _crm_checks(cfg: config_module.Config) -> list[dict[str, Any]]:
    """The CRM connection, as the adapter's own check() finds it; never "connected"
    for what was not checked."""
    from spe_core.adapter import Checkable

    try:
        adapter: Any = _build_adapter(cfg)
    except SpeError as exc:  # a configuration problem (no such adapter, its extra missing)
        return [_row("adapter", "problem", exc.problem, exc.fix)]
    checkable = isinstance(adapter, Checkable)
    try:
        if not checkable:
            return [
                _row(
                    "crm",
                    "not checked",
                    f"not checked (the {cfg.adapter} adapter has no check()): the login, "
                    "the fields and the permissions are untested",
                    None,
                )
            ]
        try:
            parts = list(adapter.check())
        except CrmError as exc:  # check() should have said so in a result
            return [_row("crm", "problem", exc.problem, crm_fix(exc, cfg.adapter))]
    finally:
        adapter.close()
    if not parts:
        return [
            _row(
                "crm",
                "not checked",
                f"the {cfg.adapter} adapter's check() reported nothing: neither the login nor "
                "the fields are proved to work",
            )
        ]
    if not all(isinstance(part, CheckResult) for part in parts):  # an older check(): problems
        return [_row("crm", "problem", str(part)) for part in parts]
    return [
        _row(f"crm {part.part}", part.status.value, part.detail, part.fix if not part.ok else None)
        for part in parts
    ]


@app.command()
def check(config: ConfigOption = Path("spe.toml"), as_json: JsonOption = False) -> None:
    """Check the configuration, the store and the CRM connection; each problem with its
    fix. Writes nothing. Exit 2 on any problem."""
    results: list[dict[str, Any]] = []

    def step(name: str, action: Callable[[], str]) -> None:
        try:
            results.append(_row(name, "ok", action()))
        except SpeError as exc:
            results.append(_row(name, "problem", exc.problem, exc.fix))

    state: dict[str, Any] = {}

    def read_config() -> str:
        if not config.exists():
            raise ConfigError(
                f"there is no {config} in {Path.cwd()}.",
                "run `spe init` here to write one, or pass --config PATH.",
            )
        state["cfg"] = config_module.load(config)
        return str(config)

    step("configuration", read_config)
    if "cfg" in state:
        cfg: config_module.Config = state["cfg"]
        for warning in cfg.routing.warnings():
            results.append(_row("routing", "warning", warning))
        for problem in cfg.process.problems(cfg.crm_stages):
            results.append(
                _row(
                    "process map",
                    "problem",
                    problem,
                    "map the stage under [flow.stages], or give the phase a metric",
                )
            )

        def store() -> str:
            url = cfg.open_url
            if url.startswith("sqlite:///"):
                path = Path(unquote(url.removeprefix("sqlite:///").partition("?")[0]))
                if not path.exists():  # checking must not create it
                    folder = path.parent if str(path.parent) else Path(".")
                    if not folder.is_dir():
                        raise ConfigError(
                            f"{cfg.store_url}: the folder {folder} does not exist.",
                            "create the folder, or point [store] url elsewhere.",
                        )
                    return f"{cfg.store_url} (created on first use)"
            s = open_store(url)
            try:
                with s.transaction() as tx:
                    state["members"] = tx.members()
            finally:
                s.close()
            return cfg.store_url

        step("store", store)
        for problem in _team_problems(cfg, state.get("members", [])):
            results.append(_row("team", "warning", problem))
        if cfg.adapter:
            results.extend(_crm_checks(cfg))
            results.extend(_sync_problems(cfg))
    problems = [r for r in results if r["status"] == "problem"]

    def show() -> None:
        marks = {
            "ok": "[green]ok[/]",
            "problem": "[red]problem[/]",
            "warning": "[yellow]warning[/]",
            "not checked": "[yellow]not checked[/]",
        }
        for r in results:
            console.print(
                f"{marks[r['status']]}  {escape(r['check'])}: {escape(str(r['detail']))}",
                highlight=False,
            )
            if r["status"] == "problem" and r.get("fix"):
                console.print(f"      fix: {escape(str(r['fix']))}", highlight=False)

    _emit(results, as_json, show)
    if problems:
        raise typer.Exit(2)


def _sync_problems(cfg: config_module.Config) -> list[dict[str, Any]]:
    """What the sync would quarantine at every run, found before one: adapter streams
    it cannot apply, and a status mapping naming values that are not SPE statuses."""
    from spe_core.inbound import STATUS_MAPPING_FIX, status_mapping_problems
    from spe_core.sync import UNKNOWN_STREAM_FIX, stream_problems

    found: list[dict[str, Any]] = []

    def problem(check: str, detail: str, fix: str) -> None:
        found.append(_row(check, "problem", detail, fix))

    fields = cfg.adapter_options.get("fields")
    mapping = fields.get("status_values") if isinstance(fields, dict) else None
    if isinstance(mapping, dict):
        where = f"[adapter.{cfg.adapter}.fields] status_values"
        problems = status_mapping_problems(mapping, where)
        for detail in problems:
            problem("status mapping", detail, STATUS_MAPPING_FIX)
        if not problems:
            found.append(_row("status mapping", "ok", "only SPE statuses"))
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
        found.append(_row("streams", "ok", f"the sync applies each: {names}"))
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


# --- people ------------------------------------------------------------------------------


def _who(member: Any) -> str:
    """A member as people read it: the name, with the id to tell them apart."""
    return f"{member.name} ({member.id})"


def find_member(members: Sequence[Any], value: str, what: str = "member") -> Any:
    """The member ``value`` names: the SPE id, a CRM id, an e-mail (where the CRM sync
    stores one) or the name, whole or a unique prefix (of the name or of one of its
    words, any case). An ambiguous value lists the candidates."""
    exact = [m for m in members if m.id == value]
    exact = exact or [m for m in members if value in m.external_ids.values()]
    if len(exact) == 1:
        return exact[0]
    folded = value.strip().casefold()
    if not exact and folded:
        exact = [
            m
            for m in members
            if m.name.casefold() == folded
            or any(v.casefold() == folded for v in m.external_ids.values())
        ]
        if len(exact) == 1:
            return exact[0]
    candidates = exact or [
        m
        for m in members
        if folded
        and (
            m.name.casefold().startswith(folded)
            or any(word.startswith(folded) for word in m.name.casefold().split())
        )
    ]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        shown_ = ", ".join(_who(m) for m in candidates[:10])
        more = f" and {len(candidates) - 10} more" if len(candidates) > 10 else ""
        raise InvalidValue(
            f"{what} {value!r} matches {len(candidates)} members: {shown_}{more}.",
            "give more of the name, or the id (`spe team` lists every member).",
        )
    raise NotFound(
        f"{what} {value!r} is no member: neither an SPE id, a CRM id, an e-mail nor "
        "(the start of) a name.",
        "give one `spe team` lists"
        + (
            "."
            if members
            else "; the store has no members yet: run `spe sync`, or add [[team]] tables "
            "to spe.toml."
        ),
    )


def _coordinated(member: Any, by: Any, as_admin: bool, members: Sequence[Any], action: str) -> None:
    """Only a field salesperson's own coordinator books for them (``--as-admin``
    overrides it, logged); other salespeople's meetings are booked by a coordinator."""
    from spe_core.errors import RuleViolation
    from spe_core.model import Role

    if as_admin:
        log.warning("%s by %s as admin for %s", action, by.id, member.id)
        err.print(
            f"[yellow]as admin:[/] {escape(_who(by))} {action} for {escape(_who(member))} "
            "(logged).",
            highlight=False,
        )
        return
    admin = "or, if you must, add --as-admin (logged)."
    if member.role is Role.FIELD_SALES:
        if member.coordinator_id is None:
            raise RuleViolation(
                f"{_who(member)} has no sales coordinator, so nobody may {action} for them.",
                "set coordinator_id in their [[team]] table of spe.toml (see docs/team.md), "
                + admin,
            )
        if by.id != member.coordinator_id:
            names = {m.id: m for m in members}
            coordinator = names.get(member.coordinator_id)
            mine = _who(coordinator) if coordinator is not None else member.coordinator_id
            raise RuleViolation(
                f"--by {_who(by)} is not the sales coordinator of {_who(member)}: field "
                f"salespeople never schedule themselves, their coordinator {mine} does.",
                f"pass --by {member.coordinator_id}, " + admin,
            )
    elif by.role is not Role.SALES_COORDINATOR:
        raise RuleViolation(
            f"--by {_who(by)} is a {by.role.value}, not a sales coordinator.",
            "pass --by a sales coordinator (`spe team` lists the roles), " + admin,
        )


# --- the queue -----------------------------------------------------------------------------


@app.command()
def replenish(
    config: ConfigOption = Path("spe.toml"), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """The morning top-up: move the best backlog items into the queue, up to target.

    With [queue] buffer_management = "auto", buffer management first adjusts the
    target (up or down by a third, with the evidence recorded as an event).
    """
    with _errors(as_json):
        cfg = _load_for_store(config, store)
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
def queue_status(
    config: ConfigOption = Path("spe.toml"), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """The buffer: level, target, zone, backlog and the oldest queued item. Writes nothing."""
    with _errors(as_json):
        cfg = _load_for_store(config, store)
        engine = _engine(cfg, write=False)
        status = engine.queue_status()
        rec = _buffer_recommendation(engine, cfg)

    def show() -> None:
        colour = {"green": "green", "yellow": "yellow", "red": "red"}[status.zone.value]
        oldest = status.oldest_queued_at.isoformat() if status.oldest_queued_at else "-"
        console.print(
            f"queue [bold]{status.level}[/] of {status.target} "
            f"([{colour}]{status.zone.value}[/]); backlog {status.backlog}; held "
            f"{status.released}; oldest queued {oldest}; shortfall {status.shortfall}",
            highlight=False,
        )
        console.print(
            f"buffer management ({cfg.buffer_management}): {rec.action} the target "
            f"({rec.current_target} -> {rec.recommended_target}); "
            f"{escape(rec.evidence)}",
            highlight=False,
        )

    _emit({**_plain(status), "buffer": _plain(rec)}, as_json, show)


@app.command()
def team(
    config: ConfigOption = Path("spe.toml"), store: StoreOption = None, as_json: JsonOption = False
) -> None:
    """The team SPE works with: names, ids (the CRM's, for [[team]] tables), roles and
    the attributes the rules use. Writes nothing."""
    with _errors(as_json):
        cfg = _load_for_store(config, store)
        engine = _engine(cfg, write=False)
        members = _team_view(engine, cfg)
        engine.store.close()
    configured = {s.member_id for s in cfg.member_settings} | {m.id for m in cfg.team}
    names = {m.id: m.name for m in members}
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
            "coordinator": names.get(m.coordinator_id) if m.coordinator_id else None,
            "home_base": None if m.home_base is None else m.home_base.address or "set",
            "crm_ids": dict(m.external_ids),
            "in_spe_toml": m.id in configured,
        }
        for m in members
    ]

    def show() -> None:
        table = _table(
            f"team ({len(rows)} members)",
            "name / id",
            "role",
            "skills",
            "WIP",
            "time zone",
            "coordinator",
            "home",
            caption="name over id; * set in spe.toml's [[team]] (see docs/team.md)",
        )
        for row in rows:
            coordinator = row["coordinator"] or row["coordinator_id"] or "-"
            table.add_row(
                escape(row["name"])
                + ("" if row["active"] else " (inactive)")
                + "\n"
                + escape(row["id"])
                + (" *" if row["in_spe_toml"] else ""),
                row["role"],
                escape(", ".join(row["skills"])) or "-",
                str(row["wip_limit"] or "-"),
                escape(row["time_zone"]),
                escape(coordinator),
                escape(row["home_base"] or "-"),
            )
        console.print(table)
        if not rows:
            console.print(
                escape(
                    "no members yet: `spe sync` brings them from the CRM (HubSpot owners "
                    "need a role: [adapter.hubspot.roles] or [adapter.hubspot.team_roles]), "
                    "or add [[team]] tables to spe.toml."
                ),
                highlight=False,
            )

    _emit(rows, as_json, show)


MemberArg = Annotated[
    str, typer.Argument(help="the member: SPE id, CRM id, e-mail or (the start of) the name")
]


@app.command()
def pull(
    member: MemberArg,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="how many")] = 1,
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pull the next opportunity (or several) for an inside salesperson."""
    with _errors(as_json):
        engine = _engine(_load_for_store(config, store))
        who = find_member(engine.members(), member)
        result = engine.pull(who.id, count)

    def show() -> None:
        for opp in result.released:
            console.print(
                f"[green]released[/] {escape(opp.id)} (account {escape(opp.account_id)}, tier "
                f"{opp.tier}, score {opp.score:g}) to {escape(_who(who))}",
                highlight=False,
            )
        if result.reason:
            console.print(f"[yellow]{escape(result.reason)}[/]", highlight=False)

    _emit(result, as_json, show)
    if not result.released:
        raise typer.Exit(1)


@app.command()
def resolve(
    opportunity: Annotated[str, typer.Argument(help="the opportunity id")],
    member: MemberArg,
    outcome: Annotated[
        str, typer.Argument(help="won, lost, disqualified, appointment_set or nurture")
    ],
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close an opportunity a member holds, with its outcome."""
    with _errors(as_json):
        engine = _engine(_load_for_store(config, store))
        who = find_member(engine.members(), member)
        opp = engine.resolve(opportunity, who.id, outcome)
    _emit(opp, as_json, lambda: console.print(f"{escape(opp.id)}: {escape(outcome)}"))


@app.command()
def route(
    kind: Annotated[str, typer.Argument(help="the task kind, e.g. quote, admin, complaint")],
    account: Annotated[str, typer.Argument(help="the account the task is for")],
    priority: Annotated[int, typer.Option(min=1, max=4, help="1 urgent .. 4 low")] = 3,
    task_id: Annotated[str | None, typer.Option("--id", help="the task id (default: new)")] = None,
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Route a transactional task to a specialist (never to a salesperson)."""
    import uuid
    from datetime import UTC, datetime

    from spe_core.model import Task

    with _errors(as_json):
        engine = _engine(_load_for_store(config, store))
        task = engine.route_task(
            Task(
                task_id or f"task-{uuid.uuid4().hex[:12]}",
                kind,
                account,
                datetime.now(UTC),
                priority=priority,
            )
        )
        names = {m.id: m for m in engine.members()}

    def show() -> None:
        if task.assignee_id:
            assignee = names.get(task.assignee_id)
            console.print(
                f"{escape(task.id)} ({escape(task.kind)}) -> [green]"
                f"{escape(_who(assignee) if assignee else task.assignee_id)}[/]; accept by "
                f"{task.accept_by.isoformat() if task.accept_by else '-'}, complete by "
                f"{task.complete_by.isoformat() if task.complete_by else '-'}",
                highlight=False,
            )
        else:
            role = task.queue_role.value if task.queue_role else "?"
            console.print(
                f"{escape(task.id)} ({escape(task.kind)}) waits in the {role} queue: "
                f"{escape(task.unassigned_reason or '')}",
                highlight=False,
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


ByOpt = Annotated[
    str,
    typer.Option("--by", help="the sales coordinator booking it: id, CRM id, e-mail or name"),
]
AsAdminOpt = Annotated[
    bool,
    typer.Option(
        "--as-admin",
        help="book although --by is not the salesperson's coordinator (logged)",
    ),
]


def _slot_times(start: Any, end: Any, zone: Any) -> tuple[str, str]:
    """A slot's start and end on the member's clock; the end's date only when it differs."""
    lo, hi = start.astimezone(zone), end.astimezone(zone)
    same_day = lo.date() == hi.date()
    return (
        lo.isoformat(sep=" ", timespec="minutes"),
        hi.strftime("%H:%M") if same_day else hi.isoformat(sep=" ", timespec="minutes"),
    )


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
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="a sales coordinator: only the field salespeople they coordinate "
            "(and inside salespeople, for calls)",
        ),
    ] = None,
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ranked slots for a meeting across field (and, for calls, inside) salespeople.

    In person when --lat/--lon give the customer's site, else a conference call.
    Slots rank by least added travel, then earliest, then evening out meetings.
    """
    from spe_core.errors import RuleViolation
    from spe_core.model import Role

    with _errors(as_json):
        request = _request(
            request_id, account, minutes, lat, lon, address, earliest, deadline, days
        )
        engine = _engine(_load_for_store(config, store))
        members = engine.members()
        only = None
        if by is not None:
            coordinator = find_member(members, by, "--by")
            if coordinator.role is not Role.SALES_COORDINATOR:
                raise RuleViolation(
                    f"--by {_who(coordinator)} is a {coordinator.role.value}, not a sales "
                    "coordinator.",
                    "pass --by a sales coordinator (`spe team` lists the roles), or leave "
                    "--by out for every salesperson.",
                )
            only = [
                m.id
                for m in members
                if m.active
                and (
                    (m.role is Role.FIELD_SALES and m.coordinator_id == coordinator.id)
                    or (m.role is Role.INSIDE_SALES and request.mode.value != "in_person")
                )
            ]
            if not only:
                raise RuleViolation(
                    f"{_who(coordinator)} coordinates no active field salesperson.",
                    "set coordinator_id in the field salespeople's [[team]] tables, or "
                    "leave --by out.",
                )
        proposal = engine.propose(request, members=only, limit=limit)
        people = {m.id: m for m in members}

    def show() -> None:
        table = _table(
            f"slots for {escape(request.id)} ({request.mode.value}, {minutes} min)",
            "member",
            "start (their clock)",
            "end",
            "added travel",
            "day",
            "week",
            caption="day, week: the member's meetings that day and week",
        )
        for slot in proposal.slots:
            member = people.get(slot.member_id)
            zone = member.zone if member is not None else UTC  # times on the member's clock
            start_text, end_text = _slot_times(slot.start, slot.end, zone)
            table.add_row(
                escape(f"{member.name}\n({member.id})" if member is not None else slot.member_id),
                start_text,
                end_text,
                f"{slot.added_travel.total_seconds() / 60:.0f} min",
                str(slot.day_meetings),
                str(slot.week_meetings),
            )
        console.print(table)
        for member_id, why in proposal.excluded:
            member = people.get(member_id)
            console.print(
                f"[yellow]left out[/] {escape(_who(member) if member else member_id)}: "
                f"{escape(why)}",
                highlight=False,
            )

    _emit(proposal, as_json, show)
    if not proposal.slots:
        raise typer.Exit(1)


@app.command()
def book(
    account: AccountArg,
    member: Annotated[
        str,
        typer.Argument(help="the salesperson whose calendar gets it: id, CRM id, e-mail or name"),
    ],
    start: Annotated[str, typer.Argument(help="the start, ISO (e.g. 2026-12-07T10:00+01:00)")],
    by: ByOpt,
    minutes: MinutesOpt = 60,
    lat: LatOpt = None,
    lon: LonOpt = None,
    address: AddressOpt = None,
    earliest: EarliestOpt = None,
    deadline: DeadlineOpt = None,
    days: DaysOpt = 7,
    request_id: IdOpt = None,
    as_admin: AsAdminOpt = False,
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Book a meeting in a salesperson's calendar, re-checked against every calendar rule.

    Only the field salesperson's own sales coordinator books for them (--by); field
    salespeople never schedule themselves.
    """
    with _errors(as_json):
        request = _request(
            request_id, account, minutes, lat, lon, address, earliest, deadline, days
        )
        engine = _engine(_load_for_store(config, store))
        members = engine.members()
        who = find_member(members, member)
        booker = find_member(members, by, "--by")
        _coordinated(who, booker, as_admin, members, "book")
        booking = engine.book(request, who.id, _when(start, "START"), by=booker.id)
        local = booking.start.astimezone(who.zone)

    def show() -> None:
        console.print(
            f"[green]booked[/] {escape(booking.id)} for {escape(_who(who))} at "
            f"{local.isoformat(timespec='minutes')} ({booking.request.mode.value}, by "
            f"{escape(_who(booker))})",
            highlight=False,
        )

    _emit(booking, as_json, show)


calendar_app = typer.Typer(
    help="Calendar checks for sales coordinators.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(calendar_app, name="calendar")


@calendar_app.command("validate")
def calendar_validate(
    member: Annotated[
        str | None,
        typer.Option(
            "--member", help="one member: id, CRM id, e-mail or name (default: every salesperson)"
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="from, ISO (default: now)")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="how many days to check")] = 14,
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check calendars (e.g. edited by hand in the CRM) against the rules; exit 1 on problems."""
    from datetime import UTC, datetime

    from spe_core.model import Role

    with _errors(as_json):
        engine = _engine(_load_for_store(config, store))
        lo = _when(start, "--start") if start else datetime.now(UTC)
        hi = lo + timedelta(days=days)
        members = engine.members()
        ids = (
            [find_member(members, member).id]
            if member
            else [
                m.id
                for m in members
                if m.role in (Role.FIELD_SALES, Role.INSIDE_SALES) and m.active
            ]
        )
        found = {mid: engine.validate_calendar(mid, lo, hi) for mid in ids}
        people = {m.id: m for m in members}

    def show() -> None:
        for mid, problems in found.items():
            name = escape(_who(people[mid]) if mid in people else mid)
            if not problems:
                console.print(f"[green]ok[/]  {name}", highlight=False)
            for v in problems:
                console.print(
                    f"[red]{escape(v.rule)}[/]  {name}: {escape(v.reason)}", highlight=False
                )

    _emit(found, as_json, show)
    if any(found.values()):
        raise typer.Exit(1)


# --- the CRM -----------------------------------------------------------------------------


class _Watched:
    """The adapter as ``spe sync --dry-run`` hands it to the sync engine: the first
    mapped records of each stream are kept to show what would change. Everything else
    is the adapter's own."""

    def __init__(self, adapter: Any, *, keep: int = 0) -> None:
        self.inner = adapter
        self.name = adapter.name
        self.batch_size = adapter.batch_size
        self.keep = keep
        self.mapped: dict[str, list[tuple[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def streams(self) -> Any:
        return self.inner.streams()

    def read(self, stream: str, since: Any) -> Any:
        return self.inner.read(stream, since)

    def to_inbound(self, record: Any) -> Any:
        inbound = self.inner.to_inbound(record)
        kept = self.mapped.setdefault(record.stream, [])
        if len(kept) < self.keep:
            kept.append((record.crm_id, inbound))
        return inbound

    def write(self, changes: Any) -> Any:
        return self.inner.write(changes)

    def close(self) -> None:
        self.inner.close()


_SAMPLES = 5
_SAMPLE_SCAN = 200


def _changes(engine: Engine, inbound: Any) -> dict[str, list[str]] | None:
    """The fields a mapped record would change in SPE (old, new); None when nothing."""
    from spe_core.model import Member, Opportunity

    value = inbound.value
    with engine.unit() as u:
        if isinstance(value, Member):
            stored: Any = u.tx.get_member(value.id)
        elif isinstance(value, Opportunity):
            stored = u.tx.get_opportunity(value.id)
        else:
            return None
    if stored is None:
        account = getattr(value, "account_id", None)
        label = getattr(value, "name", None) or (f"account {account}" if account else value.id)
        return {"(new)": ["", label]}
    names = [f.name for f in attrs.fields(type(value)) if f.name not in ("external_ids",)]
    if inbound.supplies is not None:
        names = [n for n in names if n in inbound.supplies]
    found = {
        n: [_short(getattr(stored, n)), _short(getattr(value, n))]
        for n in names
        if getattr(stored, n) != getattr(value, n)
    }
    status = getattr(stored, "status", None)
    if inbound.crm_status and status is not None and inbound.crm_status != str(status.value):
        found["status"] = [str(status.value), inbound.crm_status]
    return found or None


def _short(value: Any) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _samples(engine: Engine, watched: _Watched) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for stream, mapped in watched.mapped.items():
        for crm_id, inbound in mapped:
            changes = _changes(engine, inbound)
            if changes and len(found.setdefault(stream, [])) < _SAMPLES:
                found[stream].append({"crm_id": crm_id, "id": inbound.value.id, "fields": changes})
    return {k: v for k, v in found.items() if v}


def _settings_fingerprint(cfg: config_module.Config) -> str:
    import hashlib

    text = json.dumps(cfg.adapter_options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@app.command()
def sync(
    config: ConfigOption = Path("spe.toml"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="read and map, write nothing (not even to the store)")
    ] = False,
    wait_for_crm: Annotated[
        bool,
        typer.Option(
            "--wait-for-crm",
            help="an unreachable CRM is retried with backoff (scheduled runs); default: stop "
            "at once",
        ),
    ] = False,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sync with the CRM: read changes, stage SPE's changes, write them in batches.

    A CRM that cannot be reached, refuses the login or has a certificate that cannot
    be verified stops the run at once with the fix; failures worth retrying (rate
    limits, 5xx, timeouts) are retried with backoff, each retry shown.
    """
    import time

    from spe_core.outbox import RetryPolicy
    from spe_core.sync import SyncEngine, SyncSettings

    samples: dict[str, list[dict[str, Any]]] = {}
    notices: list[str] = []
    with _errors(as_json):
        cfg = _load_for_store(config, store)
        engine = _engine(cfg, write=not dry_run)
        adapter = _build_adapter(cfg)
        settings = SyncSettings(
            clock_skew=timedelta(minutes=cfg.sync["clock_skew_minutes"]),
            conflicts=cfg.sync["conflicts"],
            retry=RetryPolicy(max_permanent_failures=cfg.sync["max_permanent_failures"]),
            fail_fast=not wait_for_crm,  # an unreachable CRM: stop at once, with the fix
        )
        watched = _Watched(adapter, keep=_SAMPLE_SCAN if dry_run else 0)
        announced: list[bool] = []

        def notice(attempt: int, attempts: int, delay: float, reason: str) -> None:
            err.print(
                f"retrying {attempt}/{attempts} in {delay:.0f} s: {escape(reason)}",
                highlight=False,
            )
            announced.append(True)

        def pause(seconds: float) -> None:
            if not announced and seconds >= 1:
                err.print(
                    f"waiting {seconds:.0f} s for writes the CRM asked to retry", highlight=False
                )
            announced.clear()
            time.sleep(seconds)

        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}"),
            TimeElapsedColumn(),
        )
        try:
            used = cast("Adapter", watched) if dry_run else adapter  # samples: dry runs
            syncer = SyncEngine(engine, used, settings, sleep=pause, on_retry=notice)
            key = f"spe:{cfg.adapter}:adapter-settings"
            fingerprint = _settings_fingerprint(cfg)
            with engine.unit() as u:
                known = u.tx.get_meta(key)
            if (
                not dry_run
                and known != fingerprint
                and any(syncer.bookmark(spec.name) for spec in adapter.streams())
            ):
                syncer.read_again()
                notices.append(
                    f"[adapter.{cfg.adapter}] changed since the last sync: every record is "
                    "read and mapped again"
                )
            bars = not as_json and err.is_terminal  # no bars in a log file
            with Progress(*columns, console=err, disable=not bars) as progress:
                tasks: dict[str, Any] = {}

                def tick(phase: str, done: int, total: int | None) -> None:
                    if phase not in tasks:
                        tasks[phase] = progress.add_task(phase, total=total)
                    progress.update(tasks[phase], completed=done, total=total)

                syncer.progress = tick
                for line in notices:
                    err.print(escape(line), highlight=False)
                report = syncer.run(dry_run=dry_run)
            if dry_run:
                samples = _samples(engine, watched)
            elif known != fingerprint:
                with engine.unit() as u:
                    u.tx.set_meta(key, fingerprint)
        finally:
            adapter.close()

    def show() -> None:
        _show_sync_report(report, cfg.adapter, samples)

    _emit({**report.as_dict(), "changes": samples} if dry_run else report.as_dict(), as_json, show)


_QUARANTINE_SHOWN = 10
_INBOUND_COUNTS = ("read", "applied", "unchanged", "ignored", "quarantined", "conflicts")


def _show_sync_report(
    report: Any, adapter: str, samples: dict[str, list[dict[str, Any]]] | None = None
) -> None:
    """The sync report: every inbound count per stream, the outbound counts, why
    records were ignored or quarantined, and (dry runs) a sample of field changes."""
    dry = report.dry_run
    title = f"sync with {adapter}" + (" (dry run: what a run would apply)" if dry else "")
    table = Table(title=title, show_edge=False, pad_edge=False)
    table.add_column("inbound", overflow="fold")
    for col in _INBOUND_COUNTS:
        table.add_column(col, justify="right", overflow="fold")
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
        f"{report.retried}, quarantined {report.quarantined_outbound}, pending {report.pending}; "
        f"{report.calls} CRM calls",
        highlight=False,
    )
    for stream, changes in (samples or {}).items():
        console.print(f"would change in {escape(stream)} (a sample):", highlight=False)
        for change in changes:
            fields = "; ".join(
                f"new: {new}" if name == "(new)" else f"{name} {old or '-'} -> {new}"
                for name, (old, new) in change["fields"].items()
            )
            console.print(
                f"  {escape(change['crm_id'])} ({escape(change['id'])}): {escape(fields)}",
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
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the flow report: one self-contained HTML file of charts. Reads the store,
    writes nothing to it."""
    from spe_core.report import write_report

    with _errors(as_json):
        cfg = _load_for_store(config, store)
        folder = html.parent if str(html.parent) else Path(".")
        if not folder.is_dir():
            raise InvalidValue(
                f"cannot write {html}: the folder {folder} does not exist.",
                "create the folder first, or give --html a path in an existing folder.",
            )
        opened = open_store(cfg.open_url)
        try:
            events = list(opened.events())
            try:
                path = write_report(events, html, cfg.queue, process=cfg.process)
            except OSError as exc:
                raise _unwritable(html, exc) from None
        finally:
            opened.close()
    _emit(
        {"html": str(path), "events": len(events)},
        as_json,
        lambda: console.print(f"wrote [cyan]{escape(str(path))}[/]", highlight=False),
    )


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


def _mount_store_commands() -> None:
    from spe_core.store_cli import store_app  # spe store check / backup

    app.add_typer(store_app, name="store")


_mount_store_commands()


def _mount_serve_commands() -> None:
    # spe serve / spe token: importing needs only typer (Starlette and uvicorn load when
    # `spe serve` runs, from the [serve] extra)
    from spe_serve.cli import serve, token_app

    app.command("serve")(serve)
    app.add_typer(token_app, name="token")


_mount_serve_commands()

config_app = typer.Typer(help="Configuration helpers.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")


@config_app.command("reference")
def config_reference(
    as_json: Annotated[bool, typer.Option("--json", help="print the schema as JSON")] = False,
) -> None:
    """Print the configuration reference (Markdown), generated from the schema."""
    if as_json:
        _emit(
            [
                {"section": section.name, "doc": section.doc, "open": section.open, "keys": keys}
                for section in config_module.SCHEMA
                for keys in [[_plain(key) for key in section.keys]]
            ],
            True,
            lambda: None,
        )
        return
    sys.stdout.write(config_module.reference_markdown())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spe`` console script."""
    try:
        result = app(args=argv, prog_name="spe", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        result = 130
    except typer.Exit as exc:
        result = exc.exit_code
    except Exception as exc:  # a usage error: the parser's own exception
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if not (callable(show) and isinstance(code, int)):
            raise
        args = sys.argv[1:] if argv is None else argv
        if "--json" in args:  # the same error object as every other error
            formatted = getattr(exc, "format_message", None)
            message = formatted() if callable(formatted) else str(exc)
            fix = "see `spe --help` (or `spe COMMAND --help`) for the arguments."
            sys.stdout.write(json.dumps({"error": message, "fix": fix, "code": code}) + "\n")
        else:
            show()
        return code
    code = result if isinstance(result, int) else 0
    if code == 130 and not _interrupted:  # Ctrl-C outside a command's own handling
        err.print(INTERRUPTED, highlight=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
