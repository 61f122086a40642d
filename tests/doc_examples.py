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
# The others (sync, pull, resolve, route, propose, book, emulator, demo) are parsed only.
OFFLINE = (
    ("init",),
    ("adapters",),
    ("check",),
    ("team",),
    ("replenish",),
    ("queue",),
    ("report",),
    ("config",),
    ("calendar", "validate"),
)


def runs_offline(args: list[str]) -> bool:
    """Whether ``spe ARGS`` is one of the :data:`OFFLINE` commands."""
    return any(tuple(args[: len(command)]) == command for command in OFFLINE)


def run_spe_command(args: list[str]) -> str | None:
    """Run ``spe ARGS`` in the current folder (``spe init`` first if it has no spe.toml);
    None when it exits 0, else what it said."""
    from pathlib import Path

    from typer.testing import CliRunner

    from spe_core.cli import app

    runner = CliRunner()
    if args[:1] != ["init"] and not Path("spe.toml").exists():
        runner.invoke(app, ["init"])
    result = runner.invoke(app, args)
    if result.exit_code == 0:
        return None
    return f"spe {shlex.join(args)} exited {result.exit_code}: {result.stderr or result.output}"


def evaluate_shell_block(example: Example) -> str | None:
    """Sybil evaluator: every ``spe`` line of the block parses, and the offline ones run
    and exit 0; else the failures."""
    failures = []
    for args in spe_command_lines(example.parsed):
        try:
            parse_spe_command(args)
        except CommandDoesNotParse as exc:
            failures.append(str(exc))
            continue
        if runs_offline(args):
            failure = run_spe_command(args)
            if failure:
                failures.append(failure)
    return "\n".join(failures) or None
