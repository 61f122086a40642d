"""``spe store``: check and back up the store named in spe.toml.

Mounted on the ``spe`` app with ``app.add_typer(store_app, name="store")``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from spe_core import config as config_module
from spe_core.errors import SpeError, StoreDamaged, StoreError
from spe_core.store import maintenance, open_store

__all__ = ["store_app"]

store_app = typer.Typer(
    name="store",
    help="Check the store (integrity, schema, counts, event log) and back it up.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_out = Console()
_err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the spe.toml to read", envvar="SPE_CONFIG")
]
StoreOption = Annotated[
    str | None, typer.Option("--store", help="a store URL (instead of the one in spe.toml)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _fail(exc: SpeError) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(exc.problem)}", highlight=False)
    if exc.fix:
        _err.print(f"[bold]fix:[/] {escape(exc.fix)}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, StoreError) else 1)


def _url(config: Path, store: str | None) -> str:
    """``--store`` or the file's ``[store] url``, with the file's timeout keys."""
    if not config.exists() and (store or config == Path("spe.toml")):
        return store or config_module.Config.default().store_url
    return config_module.load(config).with_store(store).open_url


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@store_app.command("check")
def check_command(
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Integrity, schema version, counts, and an event log gap-free and equal to the state.

    Exit code 0 when all is well, 1 when a problem was found (each with its fix)."""
    try:
        url = _url(config, store)
        try:
            opened = open_store(url)
        except StoreDamaged as exc:
            report: dict[str, Any] = {
                "store": url,
                "ok": False,
                "integrity": exc.problem,
                "problems": [{"problem": exc.problem, "fix": exc.fix or ""}],
            }
        else:
            try:
                report = maintenance.check(opened)
            finally:
                opened.close()
    except SpeError as exc:
        _fail(exc)
    if as_json:
        _print_json(report)
    else:
        _out.print(f"store: {escape(str(report['store']))}", highlight=False)
        for key in ("integrity", "schema_version", "opportunities", "rows", "events"):
            if key in report:
                _out.print(f"{key}: {escape(str(report[key]))}", highlight=False)
        if "log_equals_state" in report:
            _out.print(f"event log equals state: {report['log_equals_state']}", highlight=False)
        for problem in report["problems"]:
            _out.print(f"[bold red]problem:[/] {escape(problem['problem'])}", highlight=False)
            _out.print(f"[bold]fix:[/] {escape(problem['fix'])}", highlight=False)
        _out.print("[green]ok[/]" if report["ok"] else "[red]problems found[/]")
    if not report["ok"]:
        raise typer.Exit(1)


@store_app.command("backup")
def backup_command(
    path: Annotated[Path, typer.Argument(help="the file to write (must not exist)")],
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy a SQLite store while it is in use (SQLite's online backup API); for
    PostgreSQL, print the pg_dump command that backs up the store's schema."""
    try:
        opened = open_store(_url(config, store))
        try:
            result = maintenance.backup(opened, path)
        finally:
            opened.close()
    except SpeError as exc:
        _fail(exc)
    if as_json:
        _print_json(result)
    elif result["written"]:
        _out.print(
            f"backed up {escape(result['store'])} to {escape(result['backup'])} "
            f"({result['bytes']} bytes, checked)",
            highlight=False,
        )
    else:
        _out.print("run this to back up the PostgreSQL store:", highlight=False)
        _out.print(escape(result["command"]), highlight=False, soft_wrap=True)
