"""A newcomer's first hour against the local HubSpot emulator, through `spe` only:
an empty folder, `spe init`, the adapter's block pasted in, then check, sync, team,
pull by name, propose and book by the coordinator's name, and the report; then the
same with a wrong token, which fails in seconds with a one-line error and its fix."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spe_adapters.hubspot.emulator import EmulatorServer
from spe_core.cli import app

runner = CliRunner()

TEAM_ROLES = """
[adapter.hubspot.team_roles]
"Inside Sales" = "inside_sales"
"Field Sales" = "field_sales"
"Sales Coordination" = "sales_coordinator"
"Customer Service" = "customer_service"
"Engineering" = "engineering"
"Promotions" = "promotions"
"""


@pytest.fixture
def portal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    try:
        token = server.portal.seed(7, deals=40)["access_token"]
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", token)
        monkeypatch.chdir(tmp_path)
        yield server
    finally:
        server.stop()


def spe(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_newcomer_gets_from_an_empty_folder_to_a_booking(
    portal: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert spe("init")[0] == 0
    toml = Path("spe.toml").read_text()
    toml = re.sub(r'(?m)^name = ""', 'name = "hubspot"', toml, count=1)
    block = f'[adapter.hubspot]\nhost = "{portal.url}"\n{TEAM_ROLES}'
    Path("spe.toml").write_text(toml + "\n" + block)
    code, out, _ = spe("check")
    assert code == 0, out
    assert "connected" not in out
    code, _, err = spe("sync")
    assert code == 0, err
    code, out, _ = spe("team", "--json")
    team = {row["name"]: row for row in json.loads(out)}
    assert len(team) >= 6
    ivan, kai = team["Ivan Petrov"]["id"], team["Kai Müller"]["id"]
    # the newcomer gives the field salesperson a home base and a coordinator
    Path("spe.toml").write_text(
        Path("spe.toml").read_text()
        + f'\n[[team]]\nid = "{ivan}"\n'
        f'coordinator_id = "{kai}"\nhome_base = {{ lat = 48.14, lon = 11.58 }}\n'
        'hours = "08:00-17:00"\n'
    )
    assert spe("replenish")[0] == 0
    code, out, err = spe("pull", "ana")  # by name
    assert code == 0, err
    assert "to Ana Ruiz (" in out
    earliest = (datetime.now(UTC) + timedelta(days=7)).date().isoformat() + "T00:00+00:00"
    where = ["--lat", "48.37", "--lon", "10.9", "--earliest", earliest, "--days", "3"]
    code, out, err = spe("propose", "acme", *where, "--by", "kai", "--json")
    assert code == 0, err
    slot = json.loads(out)["slots"][0]
    assert slot["member_id"] == ivan
    code, _, err = spe("book", "acme", "ivan", slot["start"], *where, "--by", "ivan")
    assert code == 1 and "never schedule themselves" in err
    code, out, err = spe("book", "acme", "ivan", slot["start"], *where, "--by", "kai")
    assert code == 0, err
    assert "booked" in out and "by Kai Müller" in out
    code, _, err = spe("report", "--html", "report.html")
    assert code == 0, err
    assert Path("report.html").stat().st_size > 1000

    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-wrong")
    started = time.monotonic()
    code, out, err = spe("sync")
    assert time.monotonic() - started < 10
    assert code == 3
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("fix: ")
    assert len(lines) == 2 and "Traceback" not in out + err
    code, out, _ = spe("check")
    assert code == 3 and "problem  crm" in out and "401" in out
    assert "connected" not in out and "missing fields" not in out
