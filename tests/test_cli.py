"""The spe command: every subcommand's help, exit codes, JSON output, clear errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from spe_core import config
from spe_core.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def spe(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        "",
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
        "calendar",
        "calendar validate",
        "sync",
        "emulator",
        "demo",
        "config",
        "config reference",
    ],
)
def test_every_command_has_help(command: str) -> None:
    code, out, _ = spe(*command.split(), "--help")
    assert code == 0
    assert "Usage" in out


def test_init_then_check_then_queue(workdir: Path) -> None:
    assert spe("init")[0] == 0
    assert "[queue]" in (workdir / "spe.toml").read_text()
    code, _, err = spe("init")
    assert code == 2
    assert "already exists" in err
    assert "--force" in err
    code, out, _ = spe("check", "--json")
    assert code == 0
    assert all(r["ok"] for r in json.loads(out))
    code, out, _ = spe("queue", "--json")
    assert json.loads(out)["zone"] == "red"


def test_pull_unknown_member_is_one_clear_line(workdir: Path) -> None:
    assert spe("init")[0] == 0
    code, out, err = spe("pull", "nobody")
    assert code == 2  # bad input, as the exit-code table says
    assert "Traceback" not in out + err
    assert err.splitlines()[0].startswith("error: member 'nobody' is no member")
    assert "spe team" in err and "Engine." not in err  # no Python call as the fix


def test_team_from_config_pulls_and_resolves(workdir: Path) -> None:
    (workdir / "spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n[queue]\ntarget = 2\n'
        '[[team]]\nid = "ana"\nname = "Ana"\nrole = "inside_sales"\n'
    )
    from datetime import UTC, datetime

    from spe_core import Engine, Opportunity, open_store

    engine = Engine(open_store("sqlite:///spe.db"))
    engine.add_to_backlog([Opportunity(f"o{i}", "a", datetime.now(UTC), score=i) for i in range(3)])
    engine.store.close()
    code, out, _ = spe("replenish", "--json")
    assert code == 0
    assert json.loads(out)["moved"] == ["o2", "o1"]
    code, out, _ = spe("pull", "ana", "--json")
    assert json.loads(out)["released"][0]["id"] == "o2"
    assert spe("resolve", "o2", "ana", "won")[0] == 0
    code, _, err = spe("resolve", "o2", "ana", "won")
    assert code == 1
    assert "not released" in err
    code, _, err = spe("pull", "ana", "--count", "5")
    assert code == 0


def test_every_command_closes_its_store(workdir: Path) -> None:
    """A command's engine is closed when it ends, also when it fails: the SQLite store
    folds its write-ahead log back into the file, so no -wal file is left behind."""
    (workdir / "spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n'
        '[[team]]\nid = "ana"\nname = "Ana"\nrole = "inside_sales"\n'
    )
    for args in (["replenish"], ["pull", "ana"], ["pull", "nobody"], ["queue"], ["team"]):
        spe(*args)
        assert (workdir / "spe.db").exists()
        assert not (workdir / "spe.db-wal").exists(), args


def test_bad_config_names_file_key_value_and_expectation(workdir: Path) -> None:
    (workdir / "spe.toml").write_text("[queue]\ntarget = -5\n")
    code, _, err = spe("queue")
    assert code == 2
    assert "spe.toml: [queue] target = -5 is below 0" in err
    (workdir / "spe.toml").write_text('[queue]\npull_roles = ["closers"]\n')
    assert "'closers' is not allowed" in spe("queue")[2]
    (workdir / "spe.toml").write_text("[queue]\ntargett = 5\n")
    assert "targett is not a known setting" in spe("queue")[2]
    (workdir / "spe.toml").write_text("[queue\n")
    assert "not valid TOML" in spe("queue")[2]


def test_sync_without_an_adapter_says_how_to_enable_one(workdir: Path) -> None:
    assert spe("init")[0] == 0
    code, _, err = spe("sync")
    assert code == 2
    assert '[adapter] name = "salesforce"' in err


def test_the_configuration_reference_is_generated_from_the_schema() -> None:
    on_disk = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert on_disk == config.reference_markdown(), (
        "docs/configuration.md is stale: run `spe config reference > docs/configuration.md`"
    )


def test_the_template_loads_back_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "spe.toml"
    path.write_text(config.template())
    loaded = config.load(path)
    assert loaded.queue == config.Config.default().queue
    assert loaded.store_url == "sqlite:///spe.db"


def test_route_a_task_from_the_command_line(workdir: Path) -> None:
    (workdir / "spe.toml").write_text(
        '[[team]]\nid = "cs"\nname = "CSR"\nrole = "customer_service"\n'
        '[[team]]\nid = "ana"\nname = "Ana"\nrole = "inside_sales"\n'
        "[routing]\ndefault_capacity = 2\n"
    )
    code, out, _ = spe("route", "admin", "acme", "--id", "t1", "--json")
    assert code == 0
    task = json.loads(out)
    assert task["status"] in ("assigned", "unassigned")  # depends on the wall clock's hour
    assert task["assignee_id"] in ("cs", None)
    code, _, err = spe("route", "wishes", "acme")
    assert code == 2
    assert "no route for task kind 'wishes'" in err
    (workdir / "spe.toml").write_text('[routing.quote]\nroles = ["inside_sales"]\n')
    code, _, err = spe("queue")
    assert code == 2
    assert "SPE keeps salespeople selling" in err


def test_check_reports_unmapped_crm_stages(workdir: Path) -> None:
    (workdir / "spe.toml").write_text(
        '[flow]\ncrm_stages = ["Working", "Closed Won", "Negotiation"]\n'
        '[flow.stages]\nqualifying = ["Working"]\ndelivering = ["Closed Won"]\n'
    )
    code, out, _ = spe("check", "--json")
    assert code == 2
    problems = [r for r in json.loads(out) if not r["ok"]]
    assert [p["detail"] for p in problems] == ["CRM stage 'Negotiation' is not mapped to any phase"]


def test_buffer_management_recommends_and_auto_applies(workdir: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from spe_core import Engine, QueuePolicy, open_store
    from spe_core.events import QueueTargetChanged
    from spe_core.testing import FakeClock

    # a fresh store with two hours of history: no advice yet (hours of events say nothing)
    clock = FakeClock(datetime.now(UTC) - timedelta(hours=2))
    fresh = Engine(open_store("sqlite:///fresh.db"), clock=clock, policy=QueuePolicy(target=30))
    fresh.replenish()
    clock.advance(hours=2)
    fresh.replenish()
    fresh.store.close()
    (workdir / "spe.toml").write_text('[store]\nurl = "sqlite:///fresh.db"\n[queue]\ntarget = 30\n')
    code, out, _ = spe("queue", "--json")
    assert json.loads(out)["buffer"]["action"] == "keep"
    assert "not enough history" in json.loads(out)["buffer"]["evidence"]

    clock = FakeClock(datetime.now(UTC) - timedelta(hours=30))
    engine = Engine(open_store("sqlite:///spe.db"), clock=clock, policy=QueuePolicy(target=30))
    engine.replenish()  # an empty backlog: the queue sits in red
    clock.advance(hours=2)
    engine.replenish()
    engine.store.close()
    (workdir / "spe.toml").write_text("[queue]\ntarget = 30\n")
    code, out, _ = spe("queue", "--json")
    assert json.loads(out)["buffer"]["action"] == "raise"
    assert json.loads(out)["target"] == 30  # only recommended
    (workdir / "spe.toml").write_text('[queue]\ntarget = 30\nbuffer_management = "auto"\n')
    code, out, _ = spe("replenish", "--json")
    assert code == 0
    assert json.loads(out)["target_adjusted"]["recommended_target"] == 40
    assert json.loads(spe("queue", "--json")[1])["target"] == 40
    store = open_store("sqlite:///spe.db")
    changed = [r.event for r in store.events() if isinstance(r.event, QueueTargetChanged)]
    assert [(e.previous, e.target) for e in changed] == [(30, 40)]
    store.close()


CALENDAR_TOML = """
[store]
url = "sqlite:///cal.db"
[calendar]
busy_max_age_hours = 0
[[team]]
id = "fay"
name = "Fay"
role = "field_sales"
time_zone = "Europe/Berlin"
hours = "08:00-17:00"
home_base = { lat = 48.14, lon = 11.58, address = "Munich" }
coordinator_id = "cy"
[[team]]
id = "cy"
name = "Cy"
role = "sales_coordinator"
"""


def test_propose_book_and_validate_from_the_command_line(workdir: Path) -> None:
    (workdir / "spe.toml").write_text(CALENDAR_TOML)
    where = ["--lat", "48.37", "--lon", "10.9", "--earliest", "2030-12-02T00:00+01:00"]
    code, out, _ = spe("propose", "acme", *where, "--days", "2", "--json")
    assert code == 0
    proposal = json.loads(out)
    first = proposal["slots"][0]
    # JSON carries the instant in UTC; on Fay's clock it is 09:xx in Berlin
    start = datetime.fromisoformat(first["start"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert first["member_id"] == "fay" and start.isoformat().startswith("2030-12-02T09:")
    code, out, _ = spe("book", "acme", "fay", first["start"], "--by", "cy", *where, "--id", "m1")
    assert code == 0 and "booked m1 for Fay (fay)" in out
    # the day starts at home in Munich: Augsburg at 08:00 cannot be reached
    code, _, err = spe("book", "acme", "fay", "2030-12-03T08:00+01:00", "--by", "cy", *where)
    assert code == 1 and "needs" in err and "travel from home" in err and "Traceback" not in err
    code, out, _ = spe("calendar", "validate", "--start", "2030-12-02T00:00+01:00", "--json")
    assert code == 0 and json.loads(out) == {"fay": []}
    code, out, _ = spe("check")
    assert "no sales coordinator" not in out


def test_team_tables_set_attributes_of_members_the_crm_supplies(workdir: Path) -> None:
    from spe_core import Engine, Member, open_store
    from spe_core.model import Location

    synced = Member(
        "005FAY",
        "Fay Field",
        "field_sales",
        home_base=Location(48.14, 11.58, "Munich"),
        external_ids={"salesforce": "005FAY"},
    )
    engine = Engine(open_store("sqlite:///spe.db"))
    engine.upsert_members([synced, Member("005KAI", "Kai", "sales_coordinator")])
    engine.store.close()
    (workdir / "spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n'
        '[[team]]\nid = "005FAY"\nskills = ["de"]\ncoordinator_id = "005KAI"\n'
        'hours = "07:00-15:00"\n'
        '[[team]]\nid = "005KAI"\nname = "Kai Coordinator"\nrole = "sales_coordinator"\n'
    )
    assert spe("replenish")[0] == 0  # a command that writes applies them
    assert spe("replenish")[0] == 0  # a second start changes nothing more
    engine = Engine(open_store("sqlite:///spe.db"))
    fay = engine.member("005FAY")
    assert (fay.skills, fay.coordinator_id) == (frozenset({"de"}), "005KAI")
    assert fay.working_hours.on(0)[0].start.isoformat() == "07:00:00"
    assert fay.home_base == synced.home_base and fay.external_id("salesforce") == "005FAY"
    assert engine.member("005KAI").name == "Kai Coordinator"
    upserts = [r for r in engine.store.events() if r.event.kind == "member.upserted"]
    assert len(upserts) == 4  # two seeded, one per changed member; none on the second start
    engine.store.close()


def test_team_lists_members_with_their_ids_and_where_attributes_come_from(
    workdir: Path,
) -> None:
    (workdir / "spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n'
        '[[team]]\nid = "ana"\nname = "Ana"\nrole = "inside_sales"\nskills = ["de"]\n'
        '[[team]]\nid = "fay"\nname = "Fay"\nrole = "field_sales"\ncoordinator_id = "cy"\n'
        'home_base = { lat = 48.14, lon = 11.58, address = "Munich" }\n'
    )
    code, out, _ = spe("team", "--json")
    assert code == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["ana"]["skills"] == ["de"] and rows["ana"]["in_spe_toml"]
    assert rows["fay"]["coordinator_id"] == "cy" and rows["fay"]["home_base"] == "Munich"
    code, out, _ = spe("team")
    assert code == 0 and "Munich" in out and "field_sales" in out


def test_check_warns_about_team_tables_that_match_no_member(workdir: Path) -> None:
    from spe_core import Engine, Member, open_store

    engine = Engine(open_store("sqlite:///spe.db"))
    engine.upsert_members(
        [Member("005FAY", "Fay", "field_sales"), Member("005KAI", "Kai", "sales_coordinator")]
    )
    engine.store.close()
    (workdir / "spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n'
        '[[team]]\nid = "005FAY"\ncoordinator_id = "005KAI"\n'
        '[[team]]\nid = "005TYPO"\nskills = ["de"]\n'
    )
    code, out, _ = spe("check", "--json")
    assert code == 0
    warnings = [r["detail"] for r in json.loads(out) if r["check"] == "team"]
    assert len(warnings) == 1 and "'005TYPO' matches no member" in warnings[0]
    # without the table, Fay (from the CRM) has no coordinator: check says so
    (workdir / "spe.toml").write_text('[store]\nurl = "sqlite:///spe.db"\n')
    code, out, _ = spe("check", "--json")
    warnings = [r["detail"] for r in json.loads(out) if r["check"] == "team"]
    assert any("005FAY" in w for w in warnings)


def test_demo_command_runs_the_demo_package(workdir: Path) -> None:
    code, out, err = spe("demo", "--crm", "none", "--days", "1", "--report", "demo.html")
    assert code == 0, err
    assert "Day by day" in out
    assert (workdir / "demo.html").stat().st_size > 10_000
