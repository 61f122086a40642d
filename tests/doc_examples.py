"""Helpers of the documentation tests (the root conftest.py runs the pages with Sybil)."""

from __future__ import annotations

import shlex
from typing import Any

import typer
from sybil import Example

DOC_PATTERNS = ["README.md", "docs/*.md"]
# docs/testing.md's blocks are files pytest must collect: tests/test_docs_testing.py runs them.
DOC_EXCLUDES = ["docs/testing.md"]


def spe_command_lines(source: str) -> list[list[str]]:
    """The ``spe`` invocations in a shell block, each as its argument list (after ``spe``)."""
    lines: list[list[str]] = []
    for raw in source.splitlines():
        line = raw.strip().removeprefix("$ ")
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "spe":
                lines.append(words[1:])
    return lines


class CommandDoesNotParse(Exception):
    """A documented ``spe`` line that the command line rejects."""


# Typer may vendor click: take its exception base from typer itself.
_CLICK_ERRORS: tuple[type[Exception], ...] = tuple(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def parse_spe_command(args: list[str]) -> None:
    """Parse ``spe ARGS`` with the real command line, without running it.

    Resolves the subcommand chain, then parses the options and arguments (names,
    types, required ones). Raises :class:`CommandDoesNotParse` with click's message.
    """
    from typer.main import get_command

    from spe_core.cli import app

    command: Any = get_command(app)
    name, rest = "spe", list(args)
    parent: Any = None
    while hasattr(command, "list_commands"):  # a group: find the subcommand
        ctx = typer.Context(command, info_name=name, parent=parent)
        if not rest or rest[0].startswith("-"):
            raise CommandDoesNotParse(f"spe {shlex.join(args)}: '{name}' needs a subcommand")
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise CommandDoesNotParse(f"spe {shlex.join(args)}: no command {rest[0]!r}")
        parent, name, command, rest = ctx, rest[0], sub, rest[1:]
    try:
        with command.make_context(name, rest, parent=parent):
            pass
    except _CLICK_ERRORS as exc:
        message = getattr(exc, "format_message", exc.__str__)()
        raise CommandDoesNotParse(f"spe {shlex.join(args)}: {message}") from None


# Commands that need no CRM, no data and no server: the docs' lines run for real, in the
# page's temporary folder, on a fresh `spe init` configuration (SQLite store, no adapter).
OFFLINE = (
    ("init",),
    ("adapters",),
    ("team",),
    ("replenish",),
    ("queue",),
    ("report",),
    ("config",),
    ("calendar", "validate"),
)
# Commands whose point is the CRM: they run against the HubSpot emulator (a seeded demo
# portal, reset for each line), with spe-hubspot.toml in the page's folder.
WITH_CRM = (("check",), ("sync",))
# The others (pull, resolve, route, propose, book, emulator, demo) need a store with data
# or are servers: they are parsed only.

_EMULATOR: list[Any] = []
CRM_CONFIG = """\
[store]
url = "sqlite:///spe-hubspot.db"

[adapter]
name = "hubspot"

[adapter.hubspot]
host = "{url}"
access_token_env = "SPE_DOCS_HUBSPOT_TOKEN"

[adapter.hubspot.team_roles]
"Inside Sales" = "inside_sales"
"Field Sales" = "field_sales"
"""


def _matches(args: list[str], commands: tuple[tuple[str, ...], ...]) -> bool:
    return any(tuple(args[: len(command)]) == command for command in commands)


def runs_offline(args: list[str]) -> bool:
    """Whether ``spe ARGS`` is one of the :data:`OFFLINE` commands."""
    return _matches(args, OFFLINE)


def needs_crm(args: list[str]) -> bool:
    """Whether ``spe ARGS`` is one of the :data:`WITH_CRM` commands."""
    return _matches(args, WITH_CRM)


def _hubspot_emulator() -> Any:
    """One HubSpot emulator for the session, started on first use."""
    if not _EMULATOR:
        import atexit

        from spe_adapters.hubspot.emulator import EmulatorServer

        server = EmulatorServer().start()
        atexit.register(server.stop)
        _EMULATOR.append(server)
    return _EMULATOR[0]


def run_spe_command(args: list[str], *, crm: bool = False) -> str | None:
    """Run ``spe ARGS`` in the current folder; None when it exits 0, else what it said.

    Offline (``crm=False``): on ./spe.toml, written by ``spe init`` first if missing.
    With ``crm=True``: on ./spe-hubspot.toml, against the emulator's demo portal.
    """
    from pathlib import Path

    from typer.testing import CliRunner

    from spe_core.cli import app

    runner = CliRunner()
    env: dict[str, str | None] = {}
    if crm:
        server = _hubspot_emulator()
        server.portal.reset()
        token = server.portal.seed(deals=20)["access_token"]
        Path("spe-hubspot.toml").write_text(CRM_CONFIG.format(url=server.url), encoding="utf-8")
        env = {"SPE_CONFIG": "spe-hubspot.toml", "SPE_DOCS_HUBSPOT_TOKEN": token}
    elif args[:1] != ["init"] and not Path("spe.toml").exists():
        runner.invoke(app, ["init"])
    result = runner.invoke(app, args, env=env)
    if result.exit_code == 0:
        return None
    return f"spe {shlex.join(args)} exited {result.exit_code}: {result.stderr or result.output}"


def evaluate_shell_block(example: Example) -> str | None:
    """Sybil evaluator: every ``spe`` line of the block parses, and those that can run
    (offline, or against the CRM emulator) exit 0; else the failures."""
    failures = []
    for args in spe_command_lines(example.parsed):
        try:
            parse_spe_command(args)
        except CommandDoesNotParse as exc:
            failures.append(str(exc))
            continue
        if runs_offline(args) or needs_crm(args):
            failure = run_spe_command(args, crm=needs_crm(args))
            if failure:
                failures.append(failure)
    return "\n".join(failures) or None
