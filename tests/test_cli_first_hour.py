"""A CRM admin's first hour with `spe` (issue 19): a check that tells the truth, fast
and visible failures, people by name, read commands that read, JSON everywhere and
output that survives 80 columns.

The CRM is the in-memory reference CRM behind a tiny adapter registered through the
plugin hook, the way an installed adapter package registers its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from typer.testing import CliRunner

from spe_core import Engine, Member, hookimpl, open_store
from spe_core import cli as cli_module
from spe_core.adapter import CheckResult, Inbound, SourceRecord
from spe_core.errors import (
    AuthenticationFailed,
    CertificateProblem,
    CrmUnreachable,
    TransientError,
    TryLater,
)
from spe_core.model import Location
from spe_core.plugins import Plugins
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter

runner = CliRunner()


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@attrs.define
class World:
    """The CRM the adapters of one test talk to, and how it misbehaves."""

    crm: DictCrm = attrs.Factory(lambda: DictCrm(WallClock()))
    checks: list[CheckResult] = attrs.Factory(list)
    check_raises: BaseException | None = None
    read_raises: BaseException | None = None
    unreachable_reads: int = 0
    write_failures: int = 0


WORLD = World()


class Plain(DictCrmAdapter):
    """An adapter without check(): `spe check` must not claim it connected."""

    name: ClassVar[str] = "plain"

    def __init__(self, crm: DictCrm, options: dict[str, Any]) -> None:
        super().__init__(crm)
        self.options = options

    @classmethod
    def from_config(cls, options: dict[str, Any]) -> Plain:
        return cls(WORLD.crm, dict(options))

    @property
    def calls(self) -> int:  # the CRM's count of API calls, as the real adapters keep
        return self.crm.calls

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        if WORLD.read_raises is not None:
            self.crm.calls += 1
            raise WORLD.read_raises
        if WORLD.unreachable_reads > 0:
            WORLD.unreachable_reads -= 1
            raise CrmUnreachable("connection refused by 127.0.0.1:9")
        return super().read(stream, since)

    def write(self, changes: Sequence[Any]) -> Sequence[Any]:
        if WORLD.write_failures > 0:
            WORLD.write_failures -= 1
            self.crm.calls += 1
            raise TransientError("the CRM answered 503 Service Unavailable.", "wait.")
        return super().write(changes)

    def to_inbound(self, record: SourceRecord) -> Inbound:
        inbound = super().to_inbound(record)
        homes = self.options.get("home_bases", {})
        if record.stream == "members" and record.crm_id in homes:
            home = homes[record.crm_id]
            place = Location(home["lat"], home["lon"], home.get("address"))
            return attrs.evolve(inbound, value=attrs.evolve(inbound.value, home_base=place))
        return inbound


class Checked(Plain):
    """An adapter with check(): its results are what `spe check` prints."""

    name: ClassVar[str] = "checked"

    @classmethod
    def from_config(cls, options: dict[str, Any]) -> Checked:
        return cls(WORLD.crm, dict(options))

    def check(self) -> Sequence[CheckResult]:
        if WORLD.check_raises is not None:
            raise WORLD.check_raises
        return list(WORLD.checks)


class Registrar:
    @hookimpl
    def spe_register_adapters(self, register: Any) -> None:
        register("plain", Plain)
        register("checked", Checked)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    global WORLD
    WORLD = World()
    monkeypatch.chdir(tmp_path)
    real = Plugins.create  # every Plugins the command makes registers the test adapters

    def create(cls: type[Plugins], plugins: Sequence[object] = (), **options: Any) -> Plugins:
        return real([*plugins, Registrar()], entry_points=False)

    monkeypatch.setattr(Plugins, "create", classmethod(create))
    return WORLD


def spe(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli_module.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_config(adapter: str = "checked", extra: str = "") -> None:
    Path("spe.toml").write_text(
        f'[store]\nurl = "sqlite:///spe.db"\n[adapter]\nname = "{adapter}"\n{extra}'
    )


def events() -> list[Any]:
    store = open_store("sqlite:///spe.db")
    try:
        return [r.event for r in store.events()]
    finally:
        store.close()


def seed_team(world: World) -> None:
    """Users as a CRM has them: ids that mean nothing to a person."""
    world.crm.add_user("005000000000001AAA", "Ana Ruiz", "inside_sales")
    world.crm.add_user("005000000000002AAA", "Anabel Ortiz", "inside_sales")
    world.crm.add_user("005000000000003AAA", "Fay Field", "field_sales")
    world.crm.add_user("005000000000004AAA", "Cy Coordinator", "sales_coordinator")


# --- 1. spe check tells the truth ------------------------------------------------------


def test_check_without_an_adapter_check_says_not_checked_never_connected(world: World) -> None:
    write_config("plain")
    code, out, _ = spe("check")
    assert "connected" not in out
    assert "not checked  crm: not checked (the plain adapter has no check())" in out
    rows = json.loads(spe("check", "--json")[1])
    crm = [r for r in rows if r["check"] == "crm"]
    assert crm[0]["status"] == "not checked" and crm[0]["ok"] is False
    assert code == 0  # nothing found wrong; only nothing proved right


def test_check_prints_each_part_of_the_adapters_check_with_its_fix(world: World) -> None:
    write_config()
    world.checks = [
        CheckResult("login", "ok", "logged in as admin@example.com"),
        CheckResult(
            "field Opportunity.SPE_Status__c",
            "problem",
            "the field does not exist",
            "create it (Setup > Object Manager), or map status to another field.",
        ),
        CheckResult("scope crm.objects.deals.write", "not checked", "the login failed first"),
    ]
    code, out, _ = spe("check")
    assert code == 2  # a problem, with its fix
    assert "ok  crm login: logged in as admin@example.com" in out
    assert "problem  crm field Opportunity.SPE_Status__c: the field does not exist" in out
    assert "fix: create it (Setup > Object Manager)" in out
    assert "not checked  crm scope crm.objects.deals.write" in out
    world.checks = [CheckResult("login", "ok", "logged in")]
    assert spe("check")[0] == 0


def test_an_empty_or_older_check_is_never_reported_as_success(world: World) -> None:
    write_config()
    world.checks = []
    code, out, _ = spe("check")
    assert code == 0 and "not checked  crm: the checked adapter's check() reported nothing" in out
    world.checks = ["Opportunity.SPE_Status__c does not exist"]  # type: ignore[list-item]
    code, out, _ = spe("check")
    assert code == 2 and "problem  crm: Opportunity.SPE_Status__c does not exist" in out


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (CrmUnreachable("connection refused by 127.0.0.1:9"), "is up and reachable"),
        (AuthenticationFailed("the CRM refused the login (401)."), "credentials"),
        (CertificateProblem("certificate verify failed"), "ca_bundle"),
    ],
)
def test_check_maps_each_failure_class_to_its_fix(world: World, error: Exception, fix: str) -> None:
    """An adapter whose check() raises (against its contract) still gets the right fix,
    never "create the missing fields" for a refused login."""
    write_config()
    world.check_raises = error
    code, out, _ = spe("check", "--json")
    assert code == 2
    crm = next(r for r in json.loads(out) if r["check"] == "crm")
    assert crm["status"] == "problem" and fix in crm["fix"]
    assert "missing fields" not in crm["fix"]


# --- 2. fast, visible failures ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (CrmUnreachable("connection refused by 127.0.0.1:9"), "is up and reachable"),
        (AuthenticationFailed("the CRM refused the login (401)."), "credentials"),
        (CertificateProblem("certificate verify failed"), "ca_bundle"),
    ],
)
def test_sync_stops_at_once_on_what_a_retry_cannot_cure(
    world: World, error: Exception, fix: str
) -> None:
    write_config()
    world.read_raises = error
    started = time.monotonic()
    code, out, err = spe("sync")
    assert time.monotonic() - started < 5  # seconds, not the minutes of backoff
    assert code == 3
    assert err.startswith("error: ") and "Traceback" not in out + err
    assert "retrying" not in err
    if isinstance(error, CrmUnreachable):
        assert "fix:" in err and fix in err
    code, out, _ = spe("sync", "--json")
    assert code == 3 and json.loads(out)["code"] == 3 and json.loads(out)["error"]


def test_wait_for_crm_retries_an_unreachable_crm_and_shows_it(world: World) -> None:
    write_config()
    seed_team(world)
    world.unreachable_reads = 1
    code, _, err = spe("sync", "--wait-for-crm")
    assert code == 0, err
    assert "retrying 2/8 in " in err and "s: connection refused by 127.0.0.1:9" in err
    world.unreachable_reads = 1
    code, _, err = spe("sync")  # interactive: stops at once
    assert code == 3 and "retrying" not in err


def test_sync_shows_each_retry_of_a_transient_failure(world: World) -> None:
    write_config()
    seed_team(world)
    assert spe("sync")[0] == 0
    world.crm.add_record(Account="acme", Tier=1, Score=5, Status="queued")
    store = open_store("sqlite:///spe.db")
    engine = Engine(store)
    assert spe("sync")[0] == 0
    engine.replenish()
    engine.pull("u-005000000000001AAA")  # a change the CRM must hear
    store.close()
    world.write_failures = 1
    code, _, err = spe("sync")
    assert code == 0, err
    assert "retrying 2/8 in " in err and " s: the CRM answered 503 Service Unavailable." in err


def test_ctrl_c_says_nothing_is_lost_and_exits_130(world: World) -> None:
    write_config()
    world.read_raises = KeyboardInterrupt()
    code, _, err = spe("sync")
    assert code == 130
    assert err.strip() == "error: interrupted: nothing lost, run it again to continue"


SLOW_QUEUE = """
import sys, time
from spe_core import cli

def slow(*args):
    print("ready", flush=True)
    time.sleep(60)

cli._load_for_store = slow  # a command busy when Ctrl-C comes
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigint_to_the_console_script_exits_130_with_the_message(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    src = str(Path(cli_module.__file__).resolve().parent.parent)  # this spe_core
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_QUEUE, "queue"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": src},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == "error: interrupted: nothing lost, run it again to continue"


def test_a_missing_file_a_setting_names_is_an_error_not_a_traceback(world: World) -> None:
    write_config()
    world.read_raises = FileNotFoundError(2, "No such file or directory", "/gone/ca.pem")
    code, out, err = spe("sync")
    assert code == 2 and "Traceback" not in out + err
    assert err.splitlines() == [
        "error: No such file or directory: /gone/ca.pem",
        "fix: check the files and folders spe.toml names (e.g. ca_bundle) exist and are "
        "readable, then run it again.",
    ]


def test_try_later_exits_75(world: World) -> None:
    write_config()
    until = datetime(2026, 12, 2, tzinfo=UTC)
    world.read_raises = TryLater("the daily API limit is used up.", "wait.", until=until)
    code, out, _ = spe("sync", "--json")
    assert code == 75
    assert "2026-12-02T00:00:00+00:00" in json.loads(out)["fix"]


def test_the_exit_code_table_in_the_docs_lists_every_code() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    for code in cli_module.EXIT_CODES:
        assert f"| {code} |" in page


# --- 4. people by name -----------------------------------------------------------------


def test_members_by_crm_id_name_prefix_and_ambiguity(world: World) -> None:
    write_config()
    seed_team(world)
    assert spe("sync")[0] == 0
    code, _, err = spe("pull", "ana")  # Ana Ruiz and Anabel Ortiz
    assert code == 2
    assert "matches 2 members: Ana Ruiz (u-005000000000001AAA), Anabel Ortiz" in err
    for who in ("ana r", "Ruiz", "005000000000001AAA", "u-005000000000001AAA"):
        code, _, err = spe("pull", who)
        assert code == 1, (who, err)  # found: nothing to pull yet
        assert "is no member" not in err and "matches" not in err


def test_book_by_must_be_the_field_salespersons_coordinator(world: World) -> None:
    write_config(
        extra="[calendar]\nbusy_max_age_hours = 0\n"
        '[[team]]\nid = "u-005000000000003AAA"\ncoordinator_id = "u-005000000000004AAA"\n'
        'home_base = { lat = 48.14, lon = 11.58, address = "Munich" }\n'
    )
    seed_team(world)
    assert spe("sync")[0] == 0
    start = (datetime.now(UTC) + timedelta(days=30)).replace(hour=10, minute=0)
    when = start.isoformat(timespec="minutes")
    args = ["book", "acme", "fay", when, "--lat", "48.2", "--lon", "11.6", "--days", "40"]
    code, _, err = spe(*args, "--by", "nobody-at-all")
    assert code == 2 and "'nobody-at-all' is no member" in err
    code, _, err = spe(*args, "--by", "fay")
    assert code == 1 and "is not the sales coordinator of Fay Field" in err
    assert "--by u-005000000000004AAA" in err
    code, _, err = spe(*args, "--by", "ana r")
    assert code == 1 and "never schedule themselves" in err
    booked = [e for e in events() if e.kind == "appointment.booked"]
    assert booked == []
    code, out, err = spe(*args, "--by", "Cy", "--id", "m1")
    assert code == 0, err
    assert "booked m1 for Fay Field (u-005000000000003AAA)" in out
    assert "by Cy Coordinator" in out
    code, out, err = spe(*args, "--by", "ana r", "--as-admin", "--id", "m2")
    assert "as admin:" in err and "(logged)" in err


# --- 5. read commands read -------------------------------------------------------------


def test_read_commands_never_write_to_the_store(world: World) -> None:
    write_config(extra='[[team]]\nid = "ana"\nname = "Ana"\nrole = "inside_sales"\n')
    seed_team(world)
    assert spe("sync")[0] == 0
    Path("spe.toml").write_text(  # a new [[team]] table: a write command would apply it
        Path("spe.toml").read_text()
        + '[[team]]\nid = "u-005000000000002AAA"\nskills = ["de"]\n'
        + '[[team]]\nid = "bo"\nname = "Bo"\nrole = "customer_service"\n'
    )
    world.crm.add_record(Account="acme", Tier=1, Score=5, Status="queued")
    before = events()
    assert len(before) > 0
    for command in (
        ["queue"],
        ["team"],
        ["team", "--json"],
        ["report", "--html", "r.html"],
        ["check"],
        ["sync", "--dry-run"],
    ):
        code, _, err = spe(*command)
        assert code == 0, (command, err)
        assert events() == before, command
    rows = {r["id"]: r for r in json.loads(spe("team", "--json")[1])}
    assert rows["u-005000000000002AAA"]["skills"] == ["de"]  # applied in memory
    assert rows["bo"]["name"] == "Bo"


def test_a_folder_without_spe_toml_says_so_and_creates_nothing(world: World) -> None:
    for command in (["queue"], ["team"], ["pull", "ana"], ["report"], ["sync"]):
        code, _, err = spe(*command)
        assert code == 2, command
        assert "there is no spe.toml" in err and "spe init" in err and "--store" in err
    assert not Path("spe.db").exists()
    code, out, _ = spe("queue", "--json")
    error = json.loads(out)
    assert error["code"] == 2 and "spe init" in error["fix"]
    code, out, _ = spe("check")
    assert code == 2 and "spe init" in out
    assert spe("queue", "--store", "sqlite:///other.db")[0] == 0  # named on purpose


# --- 6. machine-readable everywhere ------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "init",
        "adapters",
        "check",
        "replenish",
        "queue",
        "team",
        "pull",
        "resolve",
        "route",
        "propose",
        "book",
        "calendar validate",
        "sync",
        "report",
        "config reference",
        "store check",
        "store backup",
    ],
)
def test_every_command_that_answers_takes_json(command: str) -> None:
    code, out, _ = spe(*command.split(), "--help")
    assert code == 0 and "--json" in out


def test_a_usage_error_under_json_is_the_same_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_module.main(["pull", "--json"]) == 2  # the member is missing
    error = json.loads(capsys.readouterr().out)
    assert error["code"] == 2 and "member" in error["error"].lower() and error["fix"]


def test_config_reference_as_json() -> None:
    code, out, _ = spe("config", "reference", "--json")
    sections = {s["section"]: s for s in json.loads(out)}
    assert code == 0 and sections["queue"]["keys"][0]["name"]


def test_errors_under_json_are_one_object_with_the_same_exit_code(world: World) -> None:
    write_config()
    code, out, err = spe("report", "--html", "/missing/dir/r.html", "--json")
    assert code == 2 and err == ""
    assert json.loads(out) == {
        "error": "cannot write /missing/dir/r.html: the folder /missing/dir does not exist.",
        "fix": "create the folder first, or give --html a path in an existing folder.",
        "code": 2,
    }
    code, out, err = spe("report", "--html", "/missing/dir/r.html")
    assert code == 2 and "Traceback" not in out + err and err.startswith("error: cannot write")
    code, out, _ = spe("report", "--html", "r.html", "--json")
    assert code == 0 and json.loads(out)["html"] == "r.html"


def test_sync_json_counts_every_api_call(world: World) -> None:
    write_config()
    seed_team(world)
    for i in range(7):
        world.crm.add_record(Account=f"a{i}", Tier=1, Score=i, Status="queued")
    code, out, _ = spe("sync", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["read"] == 11
    assert report["calls"] == world.crm.calls > 0  # the reads count too


def test_sync_dry_run_shows_what_would_change(world: World) -> None:
    write_config()
    seed_team(world)
    assert spe("sync")[0] == 0
    # the reference CRM has no user edit: a person renames Ana in the raw row
    world.crm.users["005000000000001AAA"].update(Name="Ana Ruiz-Vega", Modified=datetime.now(UTC))
    world.crm.add_record(Account="acme", Tier=1, Score=5, Status="queued")
    code, out, err = spe("sync", "--dry-run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["streams"]["members"]["applied"] == 1
    change = report["changes"]["members"][0]
    assert change["crm_id"] == "005000000000001AAA"
    assert change["fields"]["name"] == ["Ana Ruiz", "Ana Ruiz-Vega"]
    assert report["changes"]["opportunities"][0]["fields"]["(new)"]
    code, out, _ = spe("sync", "--dry-run")
    assert "would change in members (a sample):" in out
    assert "name Ana Ruiz -> Ana Ruiz-Vega" in out


# --- 7. terminal output ----------------------------------------------------------------


def test_at_80_columns_ids_and_times_are_never_cut(world: World) -> None:
    write_config()
    seed_team(world)
    assert spe("sync")[0] == 0
    code, out, _ = spe("team")  # CliRunner's console is 80 columns wide
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out and "..." not in out
    folded = out.replace("\n", "").replace("│", "").replace(" ", "")
    assert "u-005000000000003AAA" in folded


def test_help_text_keeps_brackets(world: World) -> None:
    code, out, _ = spe("team", "--help")
    assert code == 0 and "[[team]]" in out


def test_adapter_settings_added_after_the_first_sync_take_effect(world: World) -> None:
    write_config()
    seed_team(world)
    assert spe("sync")[0] == 0
    write_config(
        extra='[adapter.checked.home_bases]\n"005000000000003AAA" = '
        '{ lat = 48.14, lon = 11.58, address = "Munich" }\n'
    )
    code, _, err = spe("sync")
    assert code == 0
    assert "changed since the last sync" in err
    store = open_store("sqlite:///spe.db")
    fay = Engine(store).member("u-005000000000003AAA")
    store.close()
    assert fay.home_base is not None and fay.home_base.address == "Munich"
    code, _, err = spe("sync")  # unchanged settings: no second full read
    assert "changed since the last sync" not in err


def test_members_in_the_store_show_by_name(world: World) -> None:
    store = open_store("sqlite:///spe.db")
    Engine(store).upsert_members([Member("005X", "Xena [admin]", "inside_sales")])
    store.close()
    write_config()
    code, out, _ = spe("team")
    assert code == 0 and "Xena [admin]" in out  # Rich markup in user text is escaped, not eaten
