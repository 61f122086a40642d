"""`spe emulator <crm>` beside `spe`, as a user runs them: the printed spe.toml block and
exports, pasted as they are, let `spe check` and `spe sync` work; after a restart the same
block still works (the CA, credentials and port are kept in the state folder); --reset
makes new ones. Every line reaches a pipe at once (flushed)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SF_", "HUBSPOT_", "SPE_")) and k not in ("REQUESTS_CA_BUNDLE",)
    }
    env.update(PYTHONPATH=str(SRC), XDG_STATE_HOME=str(tmp_path / "xdg"), COLUMNS="160")
    env.pop("PYTHONUNBUFFERED", None)  # the emulator must flush its lines itself
    return env


class Emulator:
    """`spe emulator ...` in a subprocess, read up to its "ready" line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spe_core.cli", "emulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        # lines not flushed would never arrive: kill it then, rather than wait forever
        watchdog = threading.Timer(120, self.proc.kill)
        watchdog.start()
        try:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("ready"):
                    break
        finally:
            watchdog.cancel()
        if not self.lines or not self.lines[-1].startswith("ready"):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"no 'ready' line within 120 s: {self.lines} {err}")

    @property
    def block(self) -> str:
        """The spe.toml block, exactly as printed."""
        start = self.lines.index("[adapter]")
        end = self.lines.index("# the shell that runs spe:")
        return "\n".join(self.lines[start:end]).strip() + "\n"

    @property
    def exports(self) -> dict[str, str]:
        """The printed `export NAME=value` lines."""
        pairs = (line.removeprefix("export ").split("=", 1) for line in self.lines)
        return {p[0]: p[1] for p in pairs if len(p) == 2 and p[0].isupper()}

    def stop(self, how: signal.Signals) -> str:
        """Stop it with ``how``; what it printed after "ready" (and its errors)."""
        self.proc.send_signal(how)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return out + err


def _spe(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spe_core.cli", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _check_and_sync(folder: Path, env: dict[str, str]) -> str:
    checked = _spe(folder, env, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    synced = _spe(folder, env, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    return synced.stdout


def _seeded_team_is_ready(folder: Path, env: dict[str, str], state: Path, block: str) -> None:
    """The block as printed is the state folder's adapter.toml, and with it the synced
    team has its field salesperson's home base and coordinator (no [[team]] by hand)."""
    assert (state / "adapter.toml").read_text(encoding="utf-8") == block
    shown = _spe(folder, env, "team", "--json")
    assert shown.returncode == 0, shown.stderr
    team = {row["name"]: row for row in json.loads(shown.stdout)}
    assert team["Ivan Petrov"]["home_base"] == "Munich"
    assert team["Ivan Petrov"]["coordinator"] == "Kai Müller"


def test_salesforce_block_and_exports_work_and_survive_a_restart(tmp_path: Path) -> None:
    env = _env(tmp_path)
    state = tmp_path / "sf-state"
    first = Emulator(env, "salesforce", "--state-dir", str(state))
    try:
        block, exports = first.block, first.exports
        assert set(exports) == {"SF_USERNAME", "SF_PASSWORD", "SF_CLIENT_ID", "SF_CLIENT_SECRET"}
        assert f'ca_bundle = "{state / "ca.pem"}"' in block
        (tmp_path / "spe.toml").write_text(block, encoding="utf-8")
        out = _check_and_sync(tmp_path, {**env, **exports})
        assert re.search(r"members\D+8\D", out) and re.search(r"opportunities\D+300\D", out)
        _seeded_team_is_ready(tmp_path, {**env, **exports}, state, block)
    finally:
        assert "emulator stopped." in first.stop(signal.SIGINT)

    again = Emulator(env, "salesforce", "--state-dir", str(state))
    try:
        assert (again.block, again.exports) == (block, exports)  # same port, CA, secrets
        out = _check_and_sync(tmp_path, {**env, **exports})  # the pasted config still works
        assert re.search(r"opportunities\D+300\D+0\D+300\D", out)  # read 300, all unchanged
        # the printed client id and secret are the emulator's connected app: the client
        # credentials flow works with the same exports
        machine = tmp_path / "client-credentials"
        machine.mkdir()
        (machine / "spe.toml").write_text(
            block.replace('auth = "password"', 'auth = "client_credentials"'),
            encoding="utf-8",
        )
        checked = _spe(machine, {**env, **exports}, "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        again.stop(signal.SIGTERM)

    fresh = Emulator(env, "salesforce", "--state-dir", str(state), "--reset", "--port", "0")
    try:
        assert fresh.exports["SF_CLIENT_SECRET"] != exports["SF_CLIENT_SECRET"]
        assert (state / "ca.pem").exists()
    finally:
        fresh.stop(signal.SIGTERM)


def test_hubspot_block_and_token_work_and_survive_a_restart(tmp_path: Path) -> None:
    env = _env(tmp_path)
    default_state = tmp_path / "xdg" / "spe" / "emulator" / "hubspot"
    first = Emulator(env, "hubspot")
    try:
        block, exports = first.block, first.exports
        assert set(exports) == {"HUBSPOT_ACCESS_TOKEN"}
        assert f"state in {default_state}" in "\n".join(first.lines)
        assert (default_state / "env.sh").read_text() == (
            f"export HUBSPOT_ACCESS_TOKEN={exports['HUBSPOT_ACCESS_TOKEN']}\n"
        )
        (tmp_path / "spe.toml").write_text(block, encoding="utf-8")
        out = _check_and_sync(tmp_path, {**env, **exports})
        assert re.search(r"members\D+8\D", out)  # the team roles came with the block
        assert re.search(r"opportunities\D+300\D", out)
        _seeded_team_is_ready(tmp_path, {**env, **exports}, default_state, block)
    finally:
        assert "emulator stopped." in first.stop(signal.SIGTERM)

    again = Emulator(env, "hubspot")
    try:
        assert (again.block, again.exports) == (block, exports)
        _check_and_sync(tmp_path, {**env, **exports})
    finally:
        again.stop(signal.SIGINT)

    fresh = Emulator(env, "hubspot", "--reset", "--port", "0")
    try:
        assert fresh.exports != exports
    finally:
        fresh.stop(signal.SIGTERM)
