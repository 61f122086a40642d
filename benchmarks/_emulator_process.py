"""An emulator in its own process, for the sync benchmarks.

Starts ``python -m spe_adapters.<crm>.emulator`` (what ``spe emulator <crm>`` runs) with
a private state folder on a free port, waits for its ``ready`` line, and drives it only
through HTTP: the client's API calls, and the kit's admin routes under ``/__emulator/``
(reset, seed, faults, the request counts). The benchmark's own process then holds only
the sync (or the bare loop) and the client library, as against a real CRM.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

__all__ = ["EmulatorProcess"]


class EmulatorProcess:
    """``with EmulatorProcess("salesforce") as emu:`` ... ``emu.url``, ``emu.ca_path``,
    ``emu.admin("seed", {...})``, ``emu.counts()``; stopped (SIGTERM) on exit."""

    def __init__(self, crm: str) -> None:
        self.crm = crm
        self._dir = tempfile.TemporaryDirectory(prefix=f"spe-bench-{crm}-")
        self.state_dir = Path(self._dir.name)
        self.url = ""
        self.ca_path: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._http = requests.Session()
        self._http.trust_env = False

    def __enter__(self) -> EmulatorProcess:
        cmd = [
            sys.executable,
            "-m",
            f"spe_adapters.{self.crm}.emulator",
            "--port",
            "0",
            "--state-dir",
            str(self.state_dir),
        ]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy()
        )
        assert self._proc.stdout is not None
        seen: list[str] = []
        for line in self._proc.stdout:
            seen.append(line)
            found = re.search(r"emulator at (\S+)", line)
            if found:
                self.url = found.group(1)
            if line.startswith("ready"):
                break
        else:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the {self.crm} emulator did not start:\n{''.join(seen)}")
        ca = self.state_dir / "ca.pem"
        if self.url.startswith("https://") and ca.exists():
            self.ca_path = str(ca)
            self._http.verify = self.ca_path
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()  # the emulator stops cleanly on SIGTERM
            try:
                self._proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()
            self._proc = None
        self._http.close()
        self._dir.cleanup()

    def admin(self, route: str, body: dict[str, Any] | None = None) -> Any:
        """POST (GET for ``requests``) one of the kit's admin routes; its JSON reply."""
        url = f"{self.url}/__emulator/{route}"
        if body is None and route == "requests":
            reply = self._http.get(url, timeout=60)
        else:
            reply = self._http.post(url, json=body or {}, timeout=600)
        reply.raise_for_status()
        return reply.json()

    def counts(self) -> dict[str, int]:
        """The API calls answered since the last reset of the counts, by endpoint."""
        return dict(self.admin("requests")["counts"])
