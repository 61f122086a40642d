"""A newcomer's first hour against each local CRM emulator, through `spe` only: an
empty folder, `spe init`, the emulator's printed block pasted in (no [[team]] table
written by hand: the seeded team and the block give the field salesperson a home base,
hours and a coordinator), then check, sync, team, pull by name, propose and book by the
coordinator's name, and the report; then the same with a wrong secret and with the
emulator stopped: each fails in seconds with a one-line error and its fix."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from typer.testing import CliRunner

from spe_adapters.emulator_kit.tls import CertificateAuthority
from spe_adapters.hubspot.emulator import EmulatorServer as HubSpotEmulator
from spe_adapters.hubspot.emulator.server import config_block as hubspot_block
from spe_adapters.salesforce.emulator import EmulatorServer as SalesforceEmulator
from spe_adapters.salesforce.emulator.server import config_block as salesforce_block
from spe_adapters.salesforce.emulator.server import exports as salesforce_exports
from spe_core.cli import app

runner = CliRunner()


@attrs.define
class Crm:
    name: str
    block: str  # what the newcomer pastes into spe.toml
    secret_env: str  # the variable to spoil for the wrong-secret run
    server: Any  # the emulator, to stop it


def pasted(block: str) -> str:
    """The emulator's printed block as its hint says to paste it into a config from
    `spe init`: without its first two lines (the [adapter] name is set in place)."""
    return "\n".join(block.splitlines()[2:]) + "\n"


def without_home_bases(block: str) -> tuple[str, str]:
    """``block`` without its [adapter.hubspot.home_bases] table, and that table."""
    tables = block.split("\n\n")
    bases = [t for t in tables if "[adapter.hubspot.home_bases]" in t]
    assert len(bases) == 1, block
    return "\n\n".join(t for t in tables if t not in bases), bases[0] + "\n"


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Crm]:
    monkeypatch.chdir(tmp_path)
    if request.param == "hubspot":
        hubspot = HubSpotEmulator().start()
        try:
            token = hubspot.portal.seed(7, deals=40)["access_token"]
            monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", token)
            block = pasted(hubspot_block(hubspot))
            yield Crm("hubspot", block, "HUBSPOT_ACCESS_TOKEN", hubspot)
        finally:
            hubspot.stop()
        return
    ca = CertificateAuthority(tmp_path / "ca")  # kept, as `spe emulator` keeps it
    salesforce = SalesforceEmulator(ca=ca).start()
    try:
        login = salesforce.org.seed(7, leads=40)
        credentials = {**login, "client_id": "3MVGemulator", "client_secret": "app-secret"}
        for line in salesforce_exports(credentials).splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            monkeypatch.setenv(name, value)
        block = pasted(salesforce_block(salesforce))
        yield Crm("salesforce", block, "SF_PASSWORD", salesforce)
    finally:
        salesforce.stop()


def spe(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_newcomer_gets_from_an_empty_folder_to_a_booking(
    crm: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert spe("init")[0] == 0
    toml = Path("spe.toml").read_text()
    toml = re.sub(r'(?m)^name = ""', f'name = "{crm.name}"', toml, count=1)
    Path("spe.toml").write_text(toml + "\n" + crm.block)
    code, out, _ = spe("check")
    assert code == 0, out
    assert "connected" not in out
    code, _, err = spe("sync")
    assert code == 0, err
    code, out, _ = spe("team", "--json")
    team = {row["name"]: row for row in json.loads(out)}
    assert len(team) == 8
    # the seeded team as the CRM and the pasted block give it: no [[team]] table by hand
    ivan, kai = team["Ivan Petrov"], team["Kai Müller"]
    assert (ivan["role"], kai["role"]) == ("field_sales", "sales_coordinator")
    assert ivan["home_base"] == "Munich" and ivan["coordinator"] == "Kai Müller"
    assert {row["time_zone"] for row in team.values()} == {"Europe/Berlin"}
    code, out, _ = spe("check", "--json")  # one coordinator per field salesperson
    assert code == 0 and not [row for row in json.loads(out) if row["check"] == "team"], out
    assert spe("replenish")[0] == 0
    code, out, err = spe("pull", "Ana Ruiz")  # an inside salesperson, by name
    assert code == 0, err
    assert "to Ana Ruiz (" in " ".join(out.split())  # wrapped at 80 columns, never cut
    earliest = (datetime.now(UTC) + timedelta(days=7)).date().isoformat() + "T00:00+00:00"
    where = ["--lat", "48.37", "--lon", "10.9", "--earliest", earliest, "--days", "3"]
    code, out, err = spe("propose", "acme", *where, "--by", "Kai Müller", "--json")
    assert code == 0, err
    slot = json.loads(out)["slots"][0]
    assert slot["member_id"] == ivan["id"]
    book = ["book", "acme", "Ivan Petrov", slot["start"], *where]
    code, _, err = spe(*book, "--by", "Ivan Petrov")
    assert code == 1 and "never schedule themselves" in err
    code, out, err = spe(*book, "--by", "Kai Müller")
    assert code == 0, err
    assert "booked" in out and "by Kai Müller" in " ".join(out.split())
    code, _, err = spe("report", "--html", "report.html")
    assert code == 0, err
    assert Path("report.html").stat().st_size > 1000

    monkeypatch.setenv(crm.secret_env, "wrong-secret")
    started = time.monotonic()
    code, out, err = spe("sync")
    assert time.monotonic() - started < 10
    assert code == 3
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("fix: ")
    assert len(lines) == 2 and "Traceback" not in out + err
    code, out, _ = spe("check")  # never "connected": a problem, or not checked at all
    assert ": connected" not in out and "missing fields" not in out
    assert not [line for line in out.splitlines() if line.startswith("ok  crm")], out
    assert code == 2 and "problem  crm" in out, out

    crm.server.stop()  # the emulator is gone: seconds, not minutes of silent retries
    started = time.monotonic()
    code, out, err = spe("sync")
    assert time.monotonic() - started < 10
    assert code == 3, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("fix: ") and len(lines) == 2


def test_home_bases_added_after_the_first_sync_reach_the_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HubSpot friction: [adapter.hubspot.home_bases] written after the first sync
    used to wait for the owner's record to change in HubSpot."""
    monkeypatch.chdir(tmp_path)
    hubspot = HubSpotEmulator().start()
    try:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", hubspot.portal.seed(7, deals=5)["access_token"])
        assert spe("init")[0] == 0
        toml = re.sub(r'(?m)^name = ""', 'name = "hubspot"', Path("spe.toml").read_text(), count=1)
        block, bases = without_home_bases(pasted(hubspot_block(hubspot)))
        Path("spe.toml").write_text(toml + block)
        assert spe("sync")[0] == 0
        team = {row["name"]: row for row in json.loads(spe("team", "--json")[1])}
        assert team["Ivan Petrov"]["home_base"] is None
        Path("spe.toml").write_text(Path("spe.toml").read_text() + "\n" + bases)
        code, _, err = spe("sync")
        assert code == 0, err
        team = {row["name"]: row for row in json.loads(spe("team", "--json")[1])}
        assert team["Ivan Petrov"]["home_base"] == "Munich"
    finally:
        hubspot.stop()
