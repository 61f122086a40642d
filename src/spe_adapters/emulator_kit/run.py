"""Running an emulator from the command line (``spe emulator <crm>``): options, output, Ctrl-C.

Every line is flushed as it is printed, so the output reaches a pipe or a log
at once; the server stops cleanly on Ctrl-C (SIGINT) and on SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from spe_adapters.emulator_kit.server import KitServer
from spe_adapters.emulator_kit.state import EmulatorState, default_state_dir

__all__ = ["add_arguments", "open_state", "say", "serve", "start_on_port"]

S = TypeVar("S", bound=KitServer)


def add_arguments(parser: argparse.ArgumentParser, crm: str) -> None:
    """The options every emulator takes: --port, --seed, --state-dir, --reset."""
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on (default: the port of the last start, else a free one; "
        "0: any free port)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the demo data")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the CA, credentials and port are kept (default {default_state_dir(crm)})",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="start afresh: new credentials, a new CA, a free port",
    )


def open_state(crm: str, args: argparse.Namespace) -> EmulatorState:
    """The state folder the parsed options name."""
    return EmulatorState.for_crm(crm, args.state_dir, reset=args.reset)


def say(line: str = "") -> None:
    """Print one line and flush it."""
    print(line, flush=True)


def start_on_port(
    make: Callable[[int], S], state: EmulatorState, requested: int | None
) -> S | None:
    """Start ``make(port)`` on the requested port, else on the remembered one, else on a
    free one; remember the port served. None (after saying why) when the port is taken."""
    port = requested if requested is not None else (state.port or 0)
    server = make(port)
    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"error: port {port} on 127.0.0.1 is in use (is this emulator already running?).\n"
            f"fix: stop the other process, or pass --port N (then paste the new block "
            f"it prints), or --reset.",
            file=sys.stderr,
            flush=True,
        )
        return None
    state.port = server.port
    return server


def serve(server: KitServer, ready: str) -> int:
    """Say ``ready``, then serve until Ctrl-C or SIGTERM and stop the server; returns the
    exit code 0. SIGTERM is handled before ``ready`` is said, so a caller that stops the
    emulator as soon as it reads that line stops it cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, handler)
    try:
        say(ready)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    say("emulator stopped.")
    return 0
