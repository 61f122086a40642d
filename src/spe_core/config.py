"""``spe.toml``: loading, validation and the configuration reference.

The schema is declared once, as data (:data:`SCHEMA`): loading validates
against it, ``spe init`` writes a commented file from it, and the docs'
configuration reference is generated from it. Every error names the file,
the key, the value and what was expected. Secrets never live in the file:
only the names of environment variables that hold them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import attrs

from spe_core.calendar import CalendarRules
from spe_core.errors import ConfigError, SpeError
from spe_core.flow import ProcessMap
from spe_core.model import Location, Member, Role, WorkingHours
from spe_core.queue import QueuePolicy, parse_order
from spe_core.routing import RoutingTable
from spe_core.team import MemberSettings

__all__ = [
    "SCHEMA",
    "Config",
    "Key",
    "Section",
    "ServeSettings",
    "load",
    "reference_markdown",
    "store_url_with",
    "template",
]


@attrs.frozen
class Key:
    """One setting: its name, type, default and a sentence for admins."""

    name: str
    kind: str  # "int", "float", "str", "bool", "list[str]", "table"
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    example: Any = None
    optional: bool = False
    """Unset unless the file sets it: ``default`` is what applies then (the store's own
    default), and ``spe init`` writes the key commented out."""


@attrs.frozen
class Section:
    """A ``[table]`` of spe.toml."""

    name: str
    doc: str
    keys: tuple[Key, ...]
    open: bool = False
    """Open sections (an adapter's own table) accept keys that the adapter validates."""
    commented: bool = False
    """``spe init`` writes the whole table commented out (settings of one command)."""


ROLES = tuple(r.value for r in Role)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

SCHEMA: tuple[Section, ...] = (
    Section(
        "store",
        "Where SPE keeps its state and event log.",
        (
            Key(
                "url",
                "str",
                "sqlite:///spe.db",
                "memory:, sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db",
            ),
            Key(
                "connect_timeout",
                "int",
                10,
                "PostgreSQL: seconds to open a connection, the first one included (libpq's "
                "connect_timeout; 0: no limit)",
                minimum=0,
                optional=True,
            ),
            Key(
                "pool_timeout",
                "float",
                10.0,
                "PostgreSQL: seconds a call waits for a free pooled connection",
                minimum=0,
                optional=True,
            ),
            Key(
                "lock_timeout",
                "str",
                "10s",
                "PostgreSQL: wait for a lock another session holds (PostgreSQL's units: 500ms, "
                "10s, 1min; a bare number is milliseconds; 0: no limit)",
                optional=True,
            ),
            Key(
                "statement_timeout",
                "str",
                "20s",
                "PostgreSQL: the longest one statement may run (units as lock_timeout)",
                optional=True,
            ),
            Key(
                "idle_in_transaction_session_timeout",
                "str",
                "60s",
                "PostgreSQL: the server ends a session left idle inside a transaction (units "
                "as lock_timeout)",
                optional=True,
            ),
            Key(
                "busy_timeout",
                "float",
                30.0,
                "SQLite: seconds to wait for another process's write lock",
                minimum=0,
                optional=True,
            ),
        ),
    ),
    Section(
        "queue",
        "The pull queue (the buffer Promotions fills every morning).",
        (
            Key("target", "int", 100, "the level the morning top-up fills the queue to", minimum=0),
            Key(
                "green_above",
                "float",
                2 / 3,
                "above this share of target the buffer is green",
                minimum=0,
                maximum=1,
            ),
            Key(
                "red_below",
                "float",
                1 / 3,
                "below this share of target the buffer is red",
                minimum=0,
                maximum=1,
            ),
            Key(
                "lease_minutes",
                "int",
                240,
                "minutes a pulled opportunity stays with its member (0: forever)",
                minimum=0,
            ),
            Key(
                "stale_days",
                "int",
                14,
                "days an opportunity may wait unpulled before it goes back to nurture (0: forever)",
                minimum=0,
            ),
            Key(
                "default_wip_limit", "int", 3, "opportunities a member may hold at once", minimum=1
            ),
            Key(
                "daily_pull_cap", "int", 30, "pulls per member per local day (0: no cap)", minimum=0
            ),
            Key("pull_roles", "list[str]", ["inside_sales"], "roles that may pull", choices=ROLES),
            Key(
                "buffer_management",
                "str",
                "recommend",
                "recommend: show Theory-of-Constraints target changes; auto: replenish "
                "applies them",
                choices=("recommend", "auto"),
            ),
            Key(
                "buffer_window_days",
                "int",
                5,
                "days of history buffer management looks at",
                minimum=1,
            ),
            Key(
                "order",
                "list[str]",
                ["-tier", "-score", "queued_at", "id"],
                "queue order; '-' for descending; fields: tier, score, queued_at, id, account_id, "
                "source_campaign, not_before, expires_at",
            ),
        ),
    ),
    Section(
        "adapter",
        "Which CRM adapter is enabled (its own settings go in [adapter.NAME]).",
        (
            Key(
                "name",
                "str",
                "",
                "the adapter's registered name: salesforce, hubspot, or a plugin's; empty: no CRM",
                example="salesforce",
            ),
        ),
        open=True,
    ),
    Section(
        "calendar",
        "Calendar rules for field salespeople (see docs/calendar.md).",
        (
            Key(
                "meetings_per_day",
                "int",
                4,
                "in-person meetings a field member may have a day (a cap)",
                minimum=1,
            ),
            Key(
                "meetings_per_week",
                "int",
                20,
                "in-person meetings a field member may have a week (a cap)",
                minimum=1,
            ),
            Key(
                "call_notice_hours",
                "float",
                24.0,
                "how far ahead conference calls are booked",
                minimum=0,
            ),
            Key(
                "buffer_minutes",
                "int",
                10,
                "free minutes kept between two calendar entries",
                minimum=0,
            ),
            Key(
                "slot_step_minutes",
                "int",
                15,
                "offered start times are multiples of this",
                minimum=0,
            ),
            Key(
                "busy_max_age_hours",
                "float",
                24.0,
                "members whose busy time was read longer ago are not offered (0: busy time is "
                "kept in SPE only, no read required)",
                minimum=0,
            ),
            Key("road_factor", "float", 1.3, "road distance over great-circle distance", minimum=1),
            Key("speed_kmh", "float", 50.0, "average door-to-door speed", minimum=1),
            Key(
                "travel_overhead_minutes", "int", 10, "fixed minutes added to every trip", minimum=0
            ),
        ),
    ),
    Section(
        "sync",
        "How the sync engine treats the CRM.",
        (
            Key(
                "clock_skew_minutes",
                "int",
                5,
                "bookmarks stop this many minutes before the sync's start (clock-skew allowance)",
                minimum=0,
            ),
            Key(
                "conflicts",
                "str",
                "crm_wins",
                "who wins when a person changed a record SPE manages",
                choices=("crm_wins", "spe_wins"),
            ),
            Key(
                "max_permanent_failures",
                "int",
                3,
                "failed writes of one record before it is quarantined",
                minimum=1,
            ),
        ),
    ),
    Section(
        "serve",
        "How `spe serve` listens and schedules its jobs (its command-line flags win; see "
        "docs/serve.md).",
        (
            Key("host", "str", "127.0.0.1", "address to listen on (--host)"),
            Key("port", "int", 8000, "port to listen on (--port)", minimum=1, maximum=65535),
            Key(
                "log_level",
                "str",
                "info",
                "uvicorn's log level (--log-level)",
                choices=LOG_LEVELS,
            ),
            Key(
                "replenish_at",
                "str",
                "07:00",
                "local time (HH:MM) of the morning top-up in each team time zone, or off "
                "(--replenish-at)",
                example="06:30",
            ),
            Key(
                "sweep_every",
                "int",
                5,
                "minutes between lease/stale sweeps; 0: off (--sweep-every)",
                minimum=0,
            ),
            Key(
                "escalate_every",
                "int",
                5,
                "minutes between SLA escalations; 0: off (--escalate-every)",
                minimum=0,
            ),
            Key(
                "sync_every",
                "int",
                10,
                "minutes between CRM syncs, when an adapter is set; 0: off (--sync-every)",
                minimum=0,
            ),
            Key(
                "tick",
                "float",
                30.0,
                "seconds between the scheduler's checks, above 0 (--tick)",
                minimum=0,
            ),
            Key(
                "jobs",
                "bool",
                True,
                "run the scheduled jobs in this process (--jobs/--no-jobs)",
            ),
            Key(
                "public_url",
                "str",
                "",
                "the address the CRM calls, when a proxy in front changes it; empty: as "
                "requested (--public-url)",
                example="https://spe.example.com",
            ),
            Key(
                "token_cache",
                "float",
                0.0,
                "seconds a valid token is trusted without reading the store; 0: never "
                "(--token-cache)",
                minimum=0,
                maximum=300,
            ),
        ),
        commented=True,
    ),
)


@attrs.frozen
class ServeSettings:
    """``[serve]``: how ``spe serve`` listens and schedules its jobs (flags win)."""

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    replenish_at: time | None = time(7, 0)
    """None: off."""
    sweep_every: int = 5
    """Minutes; 0: off (so for the two below)."""
    escalate_every: int = 5
    sync_every: int = 10
    tick: float = 30.0
    """Seconds."""
    jobs: bool = True
    public_url: str | None = None
    token_cache: float = 0.0
    """Seconds."""


#: The ``[store]`` keys merged into the store URL, by the stores that accept them.
POSTGRES_STORE_KEYS = (
    "connect_timeout",
    "pool_timeout",
    "lock_timeout",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
)
SQLITE_STORE_KEYS = ("busy_timeout",)


@attrs.frozen
class Config:
    """A validated spe.toml."""

    path: Path | None
    store_url: str
    queue: QueuePolicy
    adapter: str
    adapter_options: dict[str, Any]
    sync: dict[str, Any]
    team: tuple[Member, ...]
    routing: RoutingTable
    process: ProcessMap
    raw: dict[str, Any]
    calendar: CalendarRules = attrs.field(factory=CalendarRules)
    buffer_management: str = "recommend"
    buffer_window_days: int = 5
    crm_stages: tuple[str, ...] = ()
    """Every stage the CRM uses (so ``spe check`` can report the unmapped ones)."""
    member_settings: tuple[MemberSettings, ...] = ()
    """Every ``[[team]]`` table's values (they win over the CRM's); ``team`` holds
    the complete members among them (those with a name and a role)."""
    store_options: dict[str, str] = attrs.field(factory=dict)
    """The ``[store]`` timeout keys the file sets, as URL parameter values (see
    :attr:`open_url`)."""
    serve: ServeSettings = attrs.field(factory=ServeSettings)

    @classmethod
    def default(cls) -> Config:
        """The configuration with every default (no file)."""
        return _build(None, {})

    def with_store(self, url: str | None) -> Config:
        """This configuration on the store ``url`` (``--store``, ``SPE_STORE``) instead of
        the file's ``[store] url``; the file's timeout keys still apply (:attr:`open_url`).
        None or empty: unchanged."""
        return attrs.evolve(self, store_url=url) if url else self

    @property
    def open_url(self) -> str:
        """The URL to open the store with: :attr:`store_url` with the file's ``[store]``
        timeout keys added where it does not set them (its own parameters win).

        :raises ConfigError: a key the store does not take (``lock_timeout`` on SQLite)."""
        return store_url_with(self.store_url, self.store_options, self.path)


def store_url_with(url: str, options: Mapping[str, str], path: Path | None = None) -> str:
    """``url`` with each of ``options`` (``[store]`` timeout keys) added as a query
    parameter, unless the URL sets that parameter itself (the URL wins).

    Values are percent-encoded as libpq decodes them (a space is ``%20``, never ``+``).
    A ``memory:`` store waits on nothing and takes none; SQLite takes ``busy_timeout``
    only, PostgreSQL every other key."""
    if not options:
        return url
    text = url.strip()
    allowed: tuple[str, ...]
    if text in ("memory:", "memory://"):
        return url
    if text.startswith("sqlite://"):
        kind, allowed = "SQLite", SQLITE_STORE_KEYS
        fix = "the SQLite store's only bound is busy_timeout"
    elif text.startswith(("postgresql://", "postgres://")):
        kind, allowed = "PostgreSQL", POSTGRES_STORE_KEYS
        fix = "busy_timeout is SQLite's; PostgreSQL's bounds are " + ", ".join(allowed)
    else:
        return url  # open_store names the unknown scheme
    wrong = [k for k in options if k not in allowed]
    if wrong:
        raise ConfigError(
            f"{_where(path, 'store', wrong[0])} does not apply to the {kind} store "
            f"{_redacted(text)}.",
            f"remove it from [store] ({fix}), or open a store it applies to.",
        )
    base, _, fragment = text.partition("#")
    base, _, query = base.partition("?")
    given = {unquote(piece.partition("=")[0]) for piece in query.split("&") if piece}
    added = [f"{key}={quote(value, safe='')}" for key, value in options.items() if key not in given]
    if not added:
        return url
    query = "&".join([p for p in query.split("&") if p] + added)
    return f"{base}?{query}" + (f"#{fragment}" if fragment else "")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


_PG_DURATION = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*(us|ms|s|min|h|d)?\s*")


def _store_options(path: Path | None, values: Mapping[str, Any]) -> dict[str, str]:
    """The ``[store]`` timeout keys the file sets, each as its URL parameter value."""
    out: dict[str, str] = {}
    for key in (*POSTGRES_STORE_KEYS, *SQLITE_STORE_KEYS):
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, str):
            if not _PG_DURATION.fullmatch(value):
                raise ConfigError(
                    f"{_where(path, 'store', key)} = {value!r} is not a duration.",
                    f'write it as PostgreSQL does, e.g. {key} = "10s", "500ms", "1min" or '
                    '"0" (no limit).',
                )
            out[key] = value.strip()
        else:
            out[key] = f"{value:g}" if isinstance(value, float) else str(value)
    return out


def _serve(path: Path | None, values: Mapping[str, Any]) -> ServeSettings:
    text = values["replenish_at"]
    at: time | None
    if text.strip().lower() == "off":
        at = None
    else:
        try:
            at = time.fromisoformat(text.strip())
        except ValueError:
            raise ConfigError(
                f"{_where(path, 'serve', 'replenish_at')} = {text!r} is not a time of day.",
                'write it as HH:MM, e.g. replenish_at = "07:00", or "off".',
            ) from None
    if values["tick"] <= 0:
        raise ConfigError(
            f"{_where(path, 'serve', 'tick')} = {values['tick']:g} is not above 0.",
            "give the seconds between the scheduler's checks, e.g. tick = 30.",
        )
    public = values["public_url"].strip()
    if public and not public.startswith(("https://", "http://")):
        raise ConfigError(
            f"{_where(path, 'serve', 'public_url')} = {public!r} is not an http(s) address.",
            'write the address the CRM calls, e.g. public_url = "https://spe.example.com".',
        )
    return ServeSettings(
        host=values["host"],
        port=values["port"],
        log_level=values["log_level"],
        replenish_at=at,
        sweep_every=values["sweep_every"],
        escalate_every=values["escalate_every"],
        sync_every=values["sync_every"],
        tick=values["tick"],
        jobs=values["jobs"],
        public_url=public or None,
        token_cache=values["token_cache"],
    )


def _where(path: Path | None, section: str, key: str | None = None) -> str:
    name = str(path) if path else "spe.toml"
    return f"{name}: [{section}]" + (f" {key}" if key else "")


def _check_value(path: Path | None, section: Section, key: Key, value: Any) -> Any:
    where = _where(path, section.name, key.name)
    kinds: dict[str, Callable[[Any], bool]] = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "table": lambda v: isinstance(v, dict),
    }
    expected = {
        "int": "a whole number",
        "float": "a number",
        "str": "a string",
        "bool": "true or false",
        "list[str]": "a list of strings",
        "table": "a table",
    }
    if not kinds[key.kind](value):
        raise ConfigError(
            f"{where} = {value!r} is not {expected[key.kind]}.",
            f"write it as {expected[key.kind]}, e.g. {key.name} = "
            f"{_toml(key.example if key.example is not None else key.default)}.",
        )
    if key.minimum is not None and value < key.minimum:
        raise ConfigError(
            f"{where} = {value!r} is below {key.minimum}.", f"use {key.minimum} or more."
        )
    if key.maximum is not None and value > key.maximum:
        raise ConfigError(
            f"{where} = {value!r} is above {key.maximum}.", f"use {key.maximum} or less."
        )
    if key.choices:
        items = value if isinstance(value, list) else [value]
        bad = [i for i in items if i not in key.choices]
        if bad:
            raise ConfigError(
                f"{where} = {value!r}: {bad[0]!r} is not allowed.",
                f"choose from: {', '.join(key.choices)}.",
            )
    return float(value) if key.kind == "float" else value


def _validate(path: Path | None, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    known = {s.name: s for s in SCHEMA}
    out: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        if name in ("team", "routing", "flow") or name in EXTRA_SECTIONS:
            continue
        section = known.get(name)
        if section is None:
            raise ConfigError(
                f"{path or 'spe.toml'}: unknown section [{name}].",
                f"use one of: {', '.join(['team', 'routing', 'flow', *known, *EXTRA_SECTIONS])}.",
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{_where(path, name)} must be a table.",
                f"write it as [{name}] with keys below it.",
            )
    for section in SCHEMA:
        table = dict(data.get(section.name, {}))
        keys = {k.name: k for k in section.keys}
        values: dict[str, Any] = {}
        for key_name, value in table.items():
            key = keys.get(key_name)
            if key is None:
                if section.open and isinstance(value, dict):
                    values[key_name] = value
                    continue
                raise ConfigError(
                    f"{_where(path, section.name, key_name)} is not a known setting.",
                    f"known settings in [{section.name}]: {', '.join(keys)}.",
                )
            values[key_name] = _check_value(path, section, key, value)
        for key in section.keys:
            if not key.optional:
                values.setdefault(key.name, key.default)
        out[section.name] = values
    return out


#: Sections validated by other modules (routing, calendar, flow); name -> validator.
EXTRA_SECTIONS: dict[str, Callable[[Path | None, Any], Any]] = {}


def _team(path: Path | None, rows: Any) -> tuple[tuple[Member, ...], tuple[MemberSettings, ...]]:
    """The complete members (id, name, role and more) and every table's settings.

    A table with only an ``id`` and some attributes sets those attributes on a
    member the CRM supplies (its id is the CRM user or owner id)."""
    if rows is None:
        return (), ()
    if not isinstance(rows, list):
        raise ConfigError(
            f"{path or 'spe.toml'}: team must be an array of tables.",
            "write each member as [[team]] with id, name and role.",
        )
    members: list[Member] = []
    settings: list[MemberSettings] = []
    for index, row in enumerate(rows, start=1):
        where = f"{path or 'spe.toml'}: [[team]] #{index}"
        if not isinstance(row, dict):
            raise ConfigError(f"{where} is not a table.", "write id, name and role under it.")
        allowed = {
            "id",
            "name",
            "role",
            "skills",
            "time_zone",
            "wip_limit",
            "active",
            "weight",
            "task_capacity",
            "coordinator_id",
            "holiday_country",
            "holiday_subdivision",
            "external_ids",
            "home_base",
            "hours",
        }
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise ConfigError(
                f"{where} has unknown key {unknown[0]!r}.",
                f"known keys: {', '.join(sorted(allowed))}.",
            )
        if not isinstance(row.get("id"), str) or not row["id"].strip():
            raise ConfigError(
                f"{where} has no id.",
                "give each member an id (for a member the CRM supplies, its CRM user or "
                'owner id), e.g. id = "ana".',
            )
        if ("name" in row) != ("role" in row):
            missing = "role" if "name" in row else "name"
            raise ConfigError(
                f"{where} ({row['id']}) has no {missing}.",
                "give a new member both a name and a role; leave both out to set "
                "attributes of a member the CRM supplies.",
            )
        row = dict(row)
        member_id = str(row.pop("id"))
        try:
            if "home_base" in row:
                row["home_base"] = _location(row["home_base"])
            if "hours" in row:
                row["working_hours"] = _hours(row.pop("hours"))
            values = dict(row)
            complete = "name" in row
            if not complete:  # check the values on a stand-in member
                row.update(name=member_id, role=Role.INSIDE_SALES)
            member = Member(id=member_id, **row)
            if complete:
                members.append(member)
            settings.append(MemberSettings(member_id, values))
        except SpeError as exc:
            raise ConfigError(f"{where} ({member_id}): {exc.problem}", exc.fix) from None
        except TypeError as exc:
            raise ConfigError(
                f"{where}: {exc}.", "give each member at least id, name, role."
            ) from None
    ids = [s.member_id for s in settings]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            f"{path or 'spe.toml'}: [[team]] names a member id twice.",
            "give every member a unique id.",
        )
    return tuple(members), tuple(settings)


def _location(value: Any) -> Location:
    if not isinstance(value, dict) or not {"lat", "lon"} <= set(value):
        raise ConfigError(
            f"home_base {value!r} is not a table with lat and lon.",
            'write home_base = { lat = 48.14, lon = 11.58, address = "Munich" }.',
        )
    return Location(value["lat"], value["lon"], value.get("address"))


def _hours(value: Any) -> WorkingHours:
    try:
        start, end = (time.fromisoformat(p.strip()) for p in str(value).split("-"))
    except ValueError:
        raise ConfigError(
            f"hours {value!r} is not a range such as '08:00-17:00'.",
            'write hours = "08:00-17:00" (Monday to Friday, the member\'s own time zone).',
        ) from None
    return WorkingHours.weekdays(start, end)


def _calendar(path: Path | None, c: Mapping[str, Any]) -> CalendarRules:
    try:
        return CalendarRules(
            meetings_per_day=c["meetings_per_day"],
            meetings_per_week=c["meetings_per_week"],
            call_notice=timedelta(hours=c["call_notice_hours"]),
            buffer=timedelta(minutes=c["buffer_minutes"]),
            slot_step=timedelta(minutes=c["slot_step_minutes"]),
            busy_max_age=timedelta(hours=c["busy_max_age_hours"])
            if c["busy_max_age_hours"]
            else None,
            road_factor=c["road_factor"],
            speed_kmh=c["speed_kmh"],
            travel_overhead=timedelta(minutes=c["travel_overhead_minutes"]),
        )
    except SpeError as exc:
        raise ConfigError(f"{_where(path, 'calendar')}: {exc.problem}", exc.fix) from None


def _build(path: Path | None, data: Mapping[str, Any]) -> Config:
    values = _validate(path, data)
    q = values["queue"]
    try:
        policy = QueuePolicy(
            target=q["target"],
            green_above=q["green_above"],
            red_below=q["red_below"],
            lease=timedelta(minutes=q["lease_minutes"]) if q["lease_minutes"] else None,
            stale_age=timedelta(days=q["stale_days"]) if q["stale_days"] else None,
            default_wip_limit=q["default_wip_limit"],
            daily_pull_cap=q["daily_pull_cap"] or None,
            pull_roles=q["pull_roles"],
            order=parse_order(q["order"]),
        )
    except ConfigError as exc:
        raise ConfigError(f"{_where(path, 'queue')}: {exc.problem}", exc.fix) from None
    adapter = dict(values["adapter"])
    name = str(adapter.pop("name") or "")
    options = adapter.get(name, {}) if name else {}
    for extra, validator in EXTRA_SECTIONS.items():
        validator(path, data.get(extra))
    try:
        table = RoutingTable.from_config(data.get("routing"))
        flow_data = dict(data.get("flow") or {})
        crm_stages = flow_data.pop("crm_stages", [])
        process = ProcessMap.from_config(flow_data)
    except ConfigError as exc:
        raise ConfigError(f"{path or 'spe.toml'}: {exc.problem}", exc.fix) from None
    if not isinstance(crm_stages, list):
        raise ConfigError(
            f"{path or 'spe.toml'}: [flow] crm_stages must be a list of strings.",
            'write crm_stages = ["Prospecting", "Closed Won", ...].',
        )
    team, member_settings = _team(path, data.get("team"))
    store_options = _store_options(path, values["store"])
    if "url" in (data.get("store") or {}):  # the file names its store: check the keys now
        store_url_with(values["store"]["url"], store_options, path)
    return Config(
        path=path,
        store_url=values["store"]["url"],
        store_options=store_options,
        serve=_serve(path, values["serve"]),
        queue=policy,
        adapter=name,
        adapter_options=dict(options),
        sync=values["sync"],
        team=team,
        member_settings=member_settings,
        routing=table,
        calendar=_calendar(path, values["calendar"]),
        buffer_management=q["buffer_management"],
        buffer_window_days=q["buffer_window_days"],
        process=process,
        crm_stages=tuple(str(s) for s in crm_stages),
        raw=dict(data),
    )


def load(path: str | Path) -> Config:
    """Read and validate ``path`` (a spe.toml)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file} does not exist.", "create one with `spe init`, or pass --config PATH."
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{file} is not valid TOML: {exc}.", "fix the syntax at the line and column given."
        ) from None
    return _build(file, data)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def template() -> str:
    """A commented spe.toml with every default (what ``spe init`` writes)."""
    lines = [
        "# spe.toml: configuration of spe-sdk (Sales Process Engineering for your CRM).",
        "# Every key is optional; the values below are the defaults.",
        "# Secrets never go here: name the environment variables that hold them.",
        "",
    ]
    for section in SCHEMA:
        off = "# " if section.commented else ""
        lines.append(f"# {section.doc}")
        lines.append(f"{off}[{section.name}]")
        for key in section.keys:
            lines.append(
                f"# {key.doc}"
                + (f" ({', '.join(key.choices)})" if key.choices and key.kind == "str" else "")
            )
            lines.append(f"{'# ' if key.optional else off}{key.name} = {_toml(key.default)}")
        lines.append("")
    lines += [
        "# The team, when the CRM does not supply it (one [[team]] table per member):",
        "# [[team]]",
        '# id = "ana"',
        '# name = "Ana Ruiz"',
        '# role = "inside_sales"   # ' + ", ".join(ROLES),
        '# skills = ["de"]',
        '# time_zone = "Europe/Berlin"',
        "# [[team]]                                 # a field salesperson:",
        '# id = "fay"',
        '# name = "Fay Berg"',
        '# role = "field_sales"',
        '# time_zone = "Europe/Berlin"',
        '# hours = "08:00-17:00"                   # Monday to Friday, local time',
        '# home_base = { lat = 48.14, lon = 11.58, address = "Munich" }',
        '# coordinator_id = "cy"                   # their sales coordinator (SPE runs 1:1)',
        '# holiday_country = "DE"',
        '# holiday_subdivision = "BY"',
        "# When the CRM supplies the team, set what it does not hold by CRM user id:",
        "# [[team]]",
        '# id = "0055g00000AbCdE"                  # no name or role: a CRM member',
        '# skills = ["de"]',
        '# coordinator_id = "0055g00000KlMnO"',
        "",
        "# Task routing (see docs/routing.md): override or add routes per task kind:",
        "# [routing]",
        "# default_capacity = 8",
        "# [routing.quote]",
        '# roles = ["customer_service"]',
        '# strategy = "least_loaded"                # or round_robin',
        "",
        "# The process map (see docs/metrics.md): which CRM stages belong to which phase.",
        "# [flow]",
        '# crm_stages = ["Working", "Proposal", "Closed Won"]   # spe check reports unmapped ones',
        "# [flow.stages]",
        '# qualifying = ["Working"]',
        '# proposing = ["Proposal"]',
        '# delivering = ["Closed Won"]',
        "",
        '# Salesforce (see docs/salesforce.md): set [adapter] name = "salesforce", then',
        "# [adapter.salesforce]",
        '# auth = "password"                       # session, password or jwt',
        '# login_url = "https://login.salesforce.com"',
        '# username_env = "SF_USERNAME"            # names of environment variables',
        '# password_env = "SF_PASSWORD"',
        '# security_token_env = "SF_SECURITY_TOKEN"',
        '# client_id_env = "SF_CLIENT_ID"',
        '# client_secret_env = "SF_CLIENT_SECRET"',
        "# [adapter.salesforce.fields]",
        '# queued_object = "Lead"',
        "",
        '# HubSpot (see docs/hubspot.md): set [adapter] name = "hubspot", then',
        "# [adapter.hubspot]",
        '# access_token_env = "HUBSPOT_ACCESS_TOKEN"   # the name of the variable, never the token',
        '# queued_object = "deals"                     # or contacts',
        '# pipeline = "default"',
        "# [adapter.hubspot.team_roles]",
        '# "Inside Sales" = "inside_sales"',
        "",
    ]
    return "\n".join(lines)


def reference_markdown() -> str:
    """The configuration reference page, generated from :data:`SCHEMA`."""
    out = [
        "# Configuration reference",
        "",
        "Generated from `spe_core.config.SCHEMA`; `spe init` writes these defaults to a "
        "commented `spe.toml`.",
        "",
    ]
    section_notes = {
        "store": [
            "",
            "The timeout keys are added to the store URL as its query parameters of the "
            "same names, whichever URL the command opens (`[store] url`, `--store` or "
            "`SPE_STORE`); a parameter the URL itself sets wins. A `sqlite:` store takes "
            "`busy_timeout` only and a `postgresql:` store the others (any other is an "
            "error that names the key); a `memory:` store waits on nothing and ignores "
            "them. See [Deployment](deployment.md#bounds-on-every-wait).",
        ],
        "serve": [
            "",
            "`spe init` writes this table commented out. A flag of `spe serve` wins over "
            "its key (`--port 9000` over `port = 8000`). See [Run as a service](serve.md).",
        ],
    }
    for section in SCHEMA:
        out += [
            f"## [{section.name}]",
            "",
            section.doc,
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for key in section.keys:
            choices = f" ({', '.join(key.choices)})" if key.choices else ""
            unset = "; unset: the store's default applies" if key.optional else ""
            out.append(
                f"| `{key.name}` | {key.kind} | `{_toml(key.default)}` | "
                f"{key.doc}{choices}{unset} |"
            )
        out += section_notes.get(section.name, [])
        out.append("")
    out += [
        "## [[team]]",
        "",
        "Members, when the CRM does not supply them: `id`, `name`, `role` (one of "
        + ", ".join(f"`{r}`" for r in ROLES)
        + "), and optionally `skills`, `time_zone`, `wip_limit`, `active`, `weight`, "
        "`task_capacity`, `coordinator_id`, `holiday_country`, `holiday_subdivision`, "
        "`external_ids`; field salespeople also `home_base` (a table with `lat`, `lon` and "
        'an optional `address`) and `hours` (`"08:00-17:00"`, Monday to Friday, local '
        "time).",
        "",
        "When the CRM supplies the team, a table with an `id` (the CRM user or owner id) "
        "and no `name` or `role` sets attributes the CRM does not hold (skills, WIP "
        "limit, hours, coordinator, holidays, a HubSpot owner's time zone). What a table "
        "sets wins over the CRM's value; a sync never resets an attribute the CRM does "
        "not hold. See [Team attributes](team.md).",
        "",
        "## [routing]",
        "",
        "`default_capacity` (open tasks per member, default 8), "
        "`allow_sales_for_transactional_work_UNSAFE` (default false), and one "
        "`[routing.KIND]` table per task kind to override or add: `roles`, `strategy` "
        "(least_loaded, round_robin), `weight`, `skills_match`, `account_continuity`, "
        "`overflow_role`, `sla_accept_minutes` and `sla_complete_minutes` (by priority 1-4). "
        "See [Task routing](routing.md) for the defaults.",
        "",
        "## [flow]",
        "",
        "`crm_stages` (every stage your CRM uses, so `spe check` reports unmapped ones), "
        "`[flow.stages]` (phase name -> list of CRM stages) and optionally `[[flow.phases]]` "
        "(name, owner, goal, metrics). See [Flow metrics](metrics.md).",
        "",
    ]
    return "\n".join(out)
