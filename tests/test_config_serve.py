"""spe.toml's ``[serve]`` table: ``spe serve`` reads it, its flags win, bad values are
refused with the file, key, value and a fix; ``spe init`` writes it commented out."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import time as clock_time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spe_core import config
from spe_core.config import ServeSettings
from spe_core.errors import ConfigError, InvalidValue
from spe_serve.cli import serve_app, serve_settings

SRC = Path(__file__).resolve().parent.parent / "src"

FILE = """\
[store]
url = "sqlite:///{db}"

[serve]
host = "127.0.0.1"
port = {port}
log_level = "warning"
replenish_at = "06:30"
sweep_every = 2
escalate_every = 0
sync_every = 15
tick = 12.5
jobs = false
public_url = "https://spe.example.com"
token_cache = 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_values_are_used(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, FILE.format(db=tmp_path / "spe.db", port=8123)))
    expected = ServeSettings(
        host="127.0.0.1",
        port=8123,
        log_level="warning",
        replenish_at=clock_time(6, 30),
        sweep_every=2,
        escalate_every=0,
        sync_every=15,
        tick=12.5,
        jobs=False,
        public_url="https://spe.example.com",
        token_cache=5.0,
    )
    assert cfg.serve == expected
    assert serve_settings(cfg.serve) == expected  # no flag given: the file's values


def test_no_serve_table_gives_the_flags_old_defaults(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, '[store]\nurl = "memory:"\n'))
    assert cfg.serve == ServeSettings() == config.Config.default().serve
    assert cfg.serve.replenish_at == clock_time(7, 0)
    assert (cfg.serve.port, cfg.serve.sync_every, cfg.serve.jobs) == (8000, 10, True)


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, FILE.format(db=tmp_path / "spe.db", port=8123)))
    got = serve_settings(
        cfg.serve,
        host="0.0.0.0",
        port=9001,
        log_level="DEBUG",
        replenish_at="off",
        sweep_every=0,
        escalate_every=7,
        tick=1,
        jobs=True,
        public_url="",
        token_cache=0,
    )
    assert got == ServeSettings(
        host="0.0.0.0",
        port=9001,
        log_level="debug",
        replenish_at=None,
        sweep_every=0,
        escalate_every=7,
        sync_every=15,  # not given: the file's
        tick=1,
        jobs=True,
        public_url=None,
        token_cache=0,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"port": 0}, "--port is 0"),
        ({"tick": 0.0}, "--tick is 0.0"),
        ({"sweep_every": -1}, "--sweep-every is -1"),
        ({"replenish_at": "7am"}, "--replenish-at '7am' is not a time of day"),
        ({"log_level": "loud"}, "--log-level 'loud' is not a log level"),
        ({"token_cache": 301.0}, "--token-cache is 301.0"),
    ],
)
def test_bad_flags_are_refused(flags: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message) as caught:
        serve_settings(ServeSettings(), **flags)  # type: ignore[arg-type]
    assert caught.value.fix


@pytest.mark.parametrize(
    ("line", "problem", "fix"),
    [
        ("port = 0", "[serve] port = 0 is below 1", "use 1 or more"),
        ("port = 70000", "[serve] port = 70000 is above 65535", "use 65535 or less"),
        ('port = "8000"', "[serve] port = '8000' is not a whole number", "port = 8000"),
        (
            'replenish_at = "7am"',
            "[serve] replenish_at = '7am' is not a time of day",
            'replenish_at = "07:00"',
        ),
        ("tick = 0", "[serve] tick = 0 is not above 0", "tick = 30"),
        ("sweep_every = -5", "[serve] sweep_every = -5 is below 0", "use 0 or more"),
        ('log_level = "loud"', "[serve] log_level = 'loud': 'loud' is not allowed", "debug"),
        ("jobs = 1", "[serve] jobs = 1 is not true or false", "jobs = true"),
        ("token_cache = 3600", "[serve] token_cache = 3600 is above 300", "300 or less"),
        (
            'public_url = "spe.example.com"',
            "[serve] public_url = 'spe.example.com' is not an http(s) address",
            "https://spe.example.com",
        ),
        ("sweep = 5", "[serve] sweep is not a known setting", "sweep_every"),
    ],
)
def test_bad_file_values_are_refused_with_a_fix(
    tmp_path: Path, line: str, problem: str, fix: str
) -> None:
    path = _write(tmp_path, f"[serve]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problem.startswith(f"{path}: {problem}")
    assert fix in (caught.value.fix or "")


def test_spe_serve_reports_a_bad_serve_table_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "[serve]\nport = 0\n")
    result = CliRunner().invoke(serve_app, ["serve"])
    assert result.exit_code == 2
    assert "error: spe.toml: [serve] port = 0 is below 1." in result.stderr
    assert "fix: use 1 or more." in result.stderr
    # a good file and a bad flag: the flag's own message
    _write(tmp_path, "[serve]\nport = 8123\n")
    result = CliRunner().invoke(serve_app, ["serve", "--tick", "0"])
    assert result.exit_code == 2
    assert "error: --tick is 0.0." in result.stderr


def test_openapi_uses_the_files_public_url_unless_the_flag_gives_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, '[serve]\npublic_url = "https://file.example.com/"\n')
    out = CliRunner().invoke(serve_app, ["serve", "--openapi"]).stdout
    assert '"url": "https://file.example.com"' in out
    out = (
        CliRunner()
        .invoke(serve_app, ["serve", "--openapi", "--public-url", "https://flag.example.com"])
        .stdout
    )
    assert '"url": "https://flag.example.com"' in out


def test_init_writes_the_serve_table_commented_out_and_it_loads_when_uncommented(
    tmp_path: Path,
) -> None:
    text = config.template()
    block = text[text.index("# [serve]") :].split("\n\n")[0].splitlines()
    names = [k.name for k in next(s for s in config.SCHEMA if s.name == "serve").keys]
    for name in names:
        assert any(line.startswith(f"# {name} = ") for line in block), name
    assert config.load(_write(tmp_path, text)).serve == ServeSettings()  # commented: unset
    uncommented = "\n".join(
        line.removeprefix("# ")
        if line.startswith(("# [serve]", *(f"# {n} =" for n in names)))
        else line
        for line in text.splitlines()
    )
    assert "\n[serve]\n" in uncommented
    assert config.load(_write(tmp_path, uncommented)).serve == ServeSettings()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int, proc: subprocess.Popen[str]) -> int:
    """The status of GET /healthz on ``port`` once the server is up (bounded wait)."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status
            finally:
                conn.close()
        except OSError:
            time.sleep(0.1)
    raise AssertionError("spe serve did not answer on the port")


@pytest.mark.slow
@pytest.mark.parametrize("flag", [False, True])
def test_spe_serve_listens_where_the_file_says_unless_a_flag_says_otherwise(
    tmp_path: Path, flag: bool
) -> None:
    pytest.importorskip("uvicorn")
    file_port, flag_port = _free_port(), _free_port()
    path = _write(tmp_path, FILE.format(db=tmp_path / "spe.db", port=file_port))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, "-c", "from spe_serve.cli import serve_app; serve_app()", "serve"]
    args += ["--config", str(path)]
    if flag:
        args += ["--port", str(flag_port), "--log-level", "info"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert _answers(flag_port if flag else file_port, proc) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
    # uvicorn re-raises the signal once drained, so the exit status says "SIGTERM"
    assert proc.returncode in (0, -signal.SIGTERM), out
    if flag:  # --log-level info wins over the file's warning
        assert f"Uvicorn running on http://127.0.0.1:{flag_port}" in out
    else:  # the file's log_level = "warning": no start-up lines
        assert "Uvicorn running on" not in out
