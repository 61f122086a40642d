"""``spe store check`` and ``spe store backup`` on both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from spe_core import Engine, Opportunity
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store_cli import store_app
from tests.pg import needs_postgres, schema_url

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)

app = typer.Typer()
app.add_typer(store_app, name="store")


@app.callback()
def _root() -> None:
    """The spe app, as cli.py mounts it."""


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["store", *args])
    return result.exit_code, result.output


def _filled(url: str) -> None:
    store = open_store(url)
    engine = Engine(store, plugins=Plugins.create(entry_points=False))
    engine.enqueue(Opportunity(f"o{i}", "a", T0) for i in range(5))
    store.close()


def test_check_and_backup_a_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spe.db'}"
    _filled(url)
    code, out = _run("check", "--store", url, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    assert report["opportunities"] == {"queued": 5}
    assert report["events"] == {"count": 5, "last": 5, "gaps": []}
    assert report["log_equals_state"] is True
    code, out = _run("backup", str(tmp_path / "copy.db"), "--store", url, "--json")
    assert code == 0 and json.loads(out)["written"]
    code, out = _run("check", "--store", f"sqlite:///{tmp_path / 'copy.db'}", "--json")
    assert json.loads(out)["opportunities"] == {"queued": 5}
    code, out = _run("backup", str(tmp_path / "copy.db"), "--store", url)
    assert code == 2 and "exists already" in out and "fix:" in out


def test_check_finds_a_gap_and_a_damaged_file(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "spe.db"
    _filled(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 3")
    code, out = _run("check", "--store", f"sqlite:///{path}", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert report["events"]["gaps"] == [[2, 4]]
    assert report["log_equals_state"] is False
    with open(path, "r+b") as f:
        f.truncate(3000)
    code, out = _run("check", "--store", f"sqlite:///{path}")
    assert code == 1 and "damaged" in out and "fix:" in out


@needs_postgres
@pytest.mark.postgres
def test_check_and_backup_a_postgres_store() -> None:
    url = schema_url()
    _filled(url)
    code, out = _run("check", "--store", url, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], report
    assert report["bounds"]["lock_timeout"] == "10s"
    with_password = url.replace("://postgres@", "://postgres:pw-s3cret@")
    code, out = _run("backup", "/tmp/spe.dump", "--store", with_password, "--json")
    command = json.loads(out)["command"]
    assert command.startswith("pg_dump ") and "--schema=spe_test_" in command
    assert "pw-s3cret" not in out  # pg_dump reads PGPASSWORD or ~/.pgpass
    store = open_store(url)
    store.drop()  # type: ignore[attr-defined]
    store.close()
