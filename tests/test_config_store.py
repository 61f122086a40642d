"""spe.toml's ``[store]`` timeout keys: merged into the store URL (the URL's own
parameters win) on every path that opens the store from the configuration; a key the
store does not take is a ConfigError that names it. Real SQLite and real PostgreSQL."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spe_core import config
from spe_core.cli import _load_for_store, app
from spe_core.config import store_url_with
from spe_core.errors import ConfigError, StoreUnavailable
from spe_core.store import open_store
from spe_core.store_cli import _url
from spe_serve.setup import engine_from_config
from tests.pg import URL, drop_test_schemas, needs_postgres, schema_url


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_keys_fill_in_the_url_and_the_urls_own_parameters_win() -> None:
    keys = {"lock_timeout": "1s", "statement_timeout": "30s", "connect_timeout": "5"}
    assert (
        store_url_with("postgresql://spe@db/sales", keys)
        == "postgresql://spe@db/sales?lock_timeout=1s&statement_timeout=30s&connect_timeout=5"
    )
    assert (
        store_url_with("postgresql://spe@db/sales?schema=spe&lock%5Ftimeout=5s", keys)
        == "postgresql://spe@db/sales?schema=spe&lock%5Ftimeout=5s&statement_timeout=30s"
        "&connect_timeout=5"
    )
    # quoted as libpq decodes: a space is %20, never "+"
    assert store_url_with("postgres://db/x", {"lock_timeout": "2 s"}) == (
        "postgres://db/x?lock_timeout=2%20s"
    )
    assert store_url_with("sqlite:///spe.db?busy_timeout=9", {"busy_timeout": "2"}) == (
        "sqlite:///spe.db?busy_timeout=9"
    )
    assert store_url_with("sqlite:///spe.db", {"busy_timeout": "2.5"}) == (
        "sqlite:///spe.db?busy_timeout=2.5"
    )
    assert store_url_with("memory:", {"lock_timeout": "1s"}) == "memory:"  # waits on nothing


def test_a_key_the_store_does_not_take_is_a_config_error_that_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, '[store]\nurl = "sqlite:///spe.db"\nlock_timeout = "5s"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problem == (
        f"{path}: [store] lock_timeout does not apply to the SQLite store sqlite:///spe.db."
    )
    assert "the SQLite store's only bound is busy_timeout" in (caught.value.fix or "")
    with pytest.raises(ConfigError, match=r"\[store\] busy_timeout does not apply to the "):
        store_url_with("postgresql://spe:secret@db/x", {"busy_timeout": "3"})
    with pytest.raises(ConfigError) as caught:
        store_url_with("postgresql://spe:secret@db/x", {"busy_timeout": "3"})
    assert "secret" not in caught.value.problem
    # the file's keys follow --store: a PostgreSQL key and a SQLite --store do not mix
    cfg = config.load(
        _write(tmp_path, '[store]\nurl = "postgresql://spe@db/x"\nlock_timeout = "5s"\n')
    )
    assert cfg.open_url == "postgresql://spe@db/x?lock_timeout=5s"
    with pytest.raises(ConfigError, match=r"does not apply to the SQLite store sqlite:///o\.db"):
        _ = cfg.with_store("sqlite:///o.db").open_url


def test_a_file_without_a_url_may_hold_the_keys_of_the_store_given_elsewhere(
    tmp_path: Path,
) -> None:
    """The deployment way: SPE_STORE (or --store) names PostgreSQL, spe.toml the bounds."""
    cfg = config.load(_write(tmp_path, '[store]\nlock_timeout = "5s"\n'))
    on_pg = cfg.with_store("postgresql://spe@db/x")
    assert on_pg.store_url == "postgresql://spe@db/x"
    assert on_pg.open_url == "postgresql://spe@db/x?lock_timeout=5s"
    with pytest.raises(ConfigError, match=r"lock_timeout does not apply to the SQLite store"):
        _ = cfg.open_url  # the default store, sqlite:///spe.db


@pytest.mark.parametrize(
    ("line", "problem", "fix"),
    [
        ("lock_timeout = 10", "[store] lock_timeout = 10 is not a string", 'lock_timeout = "10s"'),
        (
            'statement_timeout = "ten seconds"',
            "[store] statement_timeout = 'ten seconds' is not a duration",
            '"500ms"',
        ),
        ("connect_timeout = 2.5", "[store] connect_timeout = 2.5 is not a whole number", "= 10"),
        ("connect_timeout = -1", "[store] connect_timeout = -1 is below 0", "0 or more"),
        ("busy_timeout = -1", "[store] busy_timeout = -1 is below 0", "0 or more"),
        ('pool_timeout = "10s"', "[store] pool_timeout = '10s' is not a number", "= 10.0"),
        ("lock_timeot = 1", "[store] lock_timeot is not a known setting", "lock_timeout"),
    ],
)
def test_bad_values_are_refused_with_a_fix(
    tmp_path: Path, line: str, problem: str, fix: str
) -> None:
    path = _write(tmp_path, f'[store]\nurl = "postgresql://spe@db/x"\n{line}\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problem.startswith(f"{path}: {problem}")
    assert fix in (caught.value.fix or "")


def test_sqlite_busy_timeout_reaches_every_path_that_opens_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, '[store]\nurl = "sqlite:///spe.db"\nbusy_timeout = 2.5\n')
    cfg = config.load(path)
    assert cfg.store_url == "sqlite:///spe.db"
    assert cfg.open_url == "sqlite:///spe.db?busy_timeout=2.5"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    urls = [
        cfg.open_url,  # the spe commands (spe_core.cli._engine opens cfg.open_url)
        _load_for_store(path, other).open_url,  # spe ... --store URL
        _url(path, None),  # spe store check/backup
        _url(path, other),  # spe store check --store URL
    ]
    assert urls[1:] == [f"{other}?busy_timeout=2.5", urls[0], f"{other}?busy_timeout=2.5"]
    for url in urls:
        store = open_store(url)
        try:
            assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500  # type: ignore[attr-defined]
        finally:
            store.close()
    with engine_from_config(cfg, other) as engine:  # spe serve, spe token
        assert engine.store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500  # type: ignore[attr-defined]
    # an explicit URL parameter wins
    with engine_from_config(cfg, other + "?busy_timeout=4") as engine:
        assert engine.store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 4000  # type: ignore[attr-defined]
    # spe check reads the file name without the query (the store is made on first use)
    (tmp_path / "spe.db").unlink()
    result = CliRunner().invoke(app, ["check", "--json"])
    rows = {r["check"]: r for r in json.loads(result.stdout)}
    assert rows["store"]["status"] == "ok", rows["store"]
    assert "created on first use" in rows["store"]["detail"]


@pytest.fixture(scope="module")
def _pg_cleanup() -> Iterator[None]:
    yield
    if URL:
        drop_test_schemas()


@needs_postgres
@pytest.mark.postgres
@pytest.mark.usefixtures("_pg_cleanup")
def test_postgres_keys_reach_the_server_and_the_urls_own_parameters_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(
        tmp_path,
        '[store]\nurl = "postgresql://nobody@db.invalid/x"\n'
        'lock_timeout = "1234ms"\n'
        'statement_timeout = "30s"\n'
        'idle_in_transaction_session_timeout = "45 s"\n'
        "pool_timeout = 3\n"
        "connect_timeout = 5\n",
    )
    cfg = config.load(path)
    url = schema_url() + "&statement_timeout=7s"  # the URL's own: it wins
    with engine_from_config(cfg, url) as engine:  # spe serve, spe token, the apps
        store = engine.store
        with store.transaction() as tx:
            assert tx._one("SHOW lock_timeout")[0] == "1234ms"  # type: ignore[attr-defined]
            assert tx._one("SHOW statement_timeout")[0] == "7s"  # type: ignore[attr-defined]
            # "45 s" went as 45%20s and arrived as written
            assert tx._one("SHOW idle_in_transaction_session_timeout")[0] == "45s"  # type: ignore[attr-defined]
        settings = store.settings  # type: ignore[attr-defined]
        assert settings.pool_timeout == 3.0
        assert settings.params["connect_timeout"] == "5"
    # the spe commands' --store and spe store check --store: the same bounds
    assert _load_for_store(path, url).open_url == _url(path, url)
    result = CliRunner().invoke(app, ["store", "check", "--store", url, "--json"])
    bounds = json.loads(result.stdout)["bounds"]
    assert (bounds["lock_timeout"], bounds["statement_timeout"]) == ("1234ms", "7s")
    assert (bounds["pool_timeout"], bounds["connect_timeout"]) == ("3s", "5")


@needs_postgres
@pytest.mark.postgres
def test_the_files_connect_timeout_bounds_the_first_connection(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "[store]\nconnect_timeout = 1\n"))  # no url: --store
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP, never answers
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            open_store(cfg.with_store(f"postgresql://spe@127.0.0.1:{port}/none").open_url)
        assert time.monotonic() - started < 8  # the default (10 s) would not be
    finally:
        silent.close()
