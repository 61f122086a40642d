"""A pytest fixture factory: a running emulator, shared by a session, reset per test.

Each emulator's ``testing`` module is one line of it; for your own::

    # conftest.py
    from spe_adapters.emulator_kit.fixtures import emulator_fixtures
    from spe_adapters.hubspot.emulator import EmulatorServer

    _portal_server, portal = emulator_fixtures("portal", EmulatorServer)

Both returned fixtures must be module-level names (pytest finds fixtures there).
The server starts once per session, on first use, and stops at the session's
end; before each test it is reset: no records, no credentials, no faults, an
empty request log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from spe_adapters.emulator_kit.server import KitServer

__all__ = ["emulator_fixtures"]

S = TypeVar("S", bound=KitServer)


def emulator_fixtures(name: str, make: Callable[[], S]) -> tuple[Any, Any]:
    """``(session fixture "_<name>_server", fixture "<name>")``: the server ``make()``
    builds, started once per session, reset before each test that asks for ``name``."""
    server_name = f"_{name}_server"

    @pytest.fixture(scope="session", name=server_name)
    def session_server() -> Iterator[S]:
        server = make().start()
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture(name=name)
    def emulator(request: pytest.FixtureRequest) -> S:
        server: S = request.getfixturevalue(server_name)
        server.reset()
        return server

    return session_server, emulator
