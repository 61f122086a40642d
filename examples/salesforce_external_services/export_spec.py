"""Export the OpenAPI document Salesforce External Services registers, from the live app.

Builds ``spe serve``'s application over a throw-away SQLite store, asks it for
``/openapi.json`` (as Setup > External Services would download it) and writes it next to
this script as ``openapi.json``::

    python examples/salesforce_external_services/export_spec.py            # write it
    python examples/salesforce_external_services/export_spec.py --check    # exit 1 if stale

The committed ``openapi.json`` is what this prints; a test regenerates it, so it never
drifts from the API. The document's ``servers`` is ``/``: External Services calls the
paths under the Named Credential's URL.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from spe_core import Engine, open_store
from spe_core.plugins import Plugins
from spe_serve.app import create_app

HERE = Path(__file__).resolve().parent
SPEC = HERE / "openapi.json"


def spec() -> dict[str, Any]:
    """``/openapi.json`` as the running service answers it."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'spe.db'}")
        engine = Engine(store, plugins=Plugins.create(entry_points=False))
        with engine, TestClient(create_app(engine)) as client:
            reply = client.get("/openapi.json")
            reply.raise_for_status()
            document: dict[str, Any] = reply.json()
    return document


def text() -> str:
    """The document as committed: two-space indents, a final newline."""
    return json.dumps(spec(), indent=2) + "\n"  # as `spe serve --openapi` prints it


def main(argv: list[str]) -> int:
    fresh = text()
    if "--check" in argv:
        if not SPEC.exists() or SPEC.read_text(encoding="utf-8") != fresh:
            print(f"{SPEC} is stale: run {Path(__file__).name} to regenerate it.")
            return 1
        return 0
    SPEC.write_text(fresh, encoding="utf-8")
    print(f"wrote {SPEC} ({len(fresh)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
