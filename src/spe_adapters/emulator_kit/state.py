"""Where ``spe emulator <crm>`` keeps what must survive a restart.

The state folder (default ``$XDG_STATE_HOME/spe/emulator/<crm>/``, that is
``~/.local/state/spe/emulator/<crm>/``; ``--state-dir`` chooses another) holds:

- ``state.json``: the port last served and the credentials printed (generated
  once), so a configuration pasted from the emulator's output keeps working;
- ``ca.pem`` and ``ca-key.pem``: the test CA of an HTTPS emulator;
- ``adapter.toml`` and ``env.sh``: the printed ``spe.toml`` block and exports.

``--reset`` empties the folder first: new credentials, a new CA, a free port.
The CRM records themselves are not kept: each start seeds the same demo data
again (the same seed gives the same records and ids).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["EmulatorState", "default_state_dir"]

STATE_FILE = "state.json"


def default_state_dir(crm: str) -> Path:
    """``$XDG_STATE_HOME/spe/emulator/<crm>`` (``~/.local/state`` when the variable is unset)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "spe" / "emulator" / crm


class EmulatorState:
    """The state folder of one emulator (created readable by its owner only)."""

    def __init__(self, directory: str | Path, *, reset: bool = False) -> None:
        self.directory = Path(directory).expanduser().resolve()
        if reset and self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._file = self.directory / STATE_FILE
        self._data: dict[str, Any] = {}
        if self._file.exists():
            try:
                loaded = json.loads(self._file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}
            self._data = loaded if isinstance(loaded, dict) else {}

    @classmethod
    def for_crm(cls, crm: str, directory: str | Path | None, *, reset: bool) -> EmulatorState:
        """The state folder ``directory``, or the default one of ``crm``."""
        return cls(directory or default_state_dir(crm), reset=reset)

    def _save(self) -> None:
        self.write_private(STATE_FILE, json.dumps(self._data, indent=2, sort_keys=True) + "\n")

    def write_private(self, name: str, text: str) -> Path:
        """Write ``text`` to ``name`` in the folder, readable by the owner only."""
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    @property
    def port(self) -> int | None:
        """The port served last time, if any."""
        value = self._data.get("port")
        return int(value) if isinstance(value, int) else None

    @port.setter
    def port(self, value: int) -> None:
        self._data["port"] = int(value)
        self._save()

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The credential ``name``, made by ``make`` on first use and kept."""
        secrets = self._data.setdefault("credentials", {})
        if not isinstance(secrets.get(name), str):
            secrets[name] = make()
            self._save()
        return str(secrets[name])
