"""The docs' examples are all run (see the root conftest.py), and the shell check bites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doc_examples import (
    DOC_EXCLUDES,
    DOC_PATTERNS,
    CommandDoesNotParse,
    _hubspot_emulator,
    needs_crm,
    parse_spe_command,
    run_spe_command,
    runs_offline,
    spe_command_lines,
)

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
SKIP = "<!-- skip: next -->"


def test_every_page_with_examples_is_run() -> None:
    import tomllib

    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]["testpaths"]
    assert {"README.md", "docs"} <= set(testpaths), "scripts/test would not run the docs"
    excluded = {ROOT / p for p in DOC_EXCLUDES}
    assert excluded == {ROOT / "docs" / "testing.md"}  # tests/test_docs_testing.py runs it
    for page in PAGES:
        rel = page.relative_to(ROOT).as_posix()
        languages = {lang for lang, _ in FENCE.findall(page.read_text(encoding="utf-8"))}
        if languages & {"python", "console", "bash"} and page not in excluded:
            assert any(Path(rel).match(p) for p in DOC_PATTERNS), f"{rel}'s examples never run"


def test_fragments_are_few_and_marked() -> None:
    """A skip marker stands right above a Python block; the fragments are plugins.md's
    hook signatures (one per hook: a signature has no body) and adapters.md's three
    protocol sketches, nothing else."""
    from spe_core import hookspecs

    hooks = sum(1 for name in dir(hookspecs) if name.startswith("spe_"))
    skipped: dict[str, int] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        skipped[page.name] = text.count(SKIP)
        assert text.count(SKIP) == text.count(f"{SKIP}\n```python\n"), page.name
    assert skipped.pop("plugins.md", 0) <= hooks
    assert skipped.pop("adapters.md", 0) <= 3
    assert sum(skipped.values()) == 0, skipped


def test_the_error_shown_in_cli_md_is_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from spe_core.cli import app

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = re.search(r"^```\n(error: spe\.toml: .*?)^```$", text, re.M | re.S)
    assert shown, "docs/cli.md shows no error"
    (tmp_path / "spe.toml").write_text("[queue]\ntarget = -5\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["queue"])
    assert result.exit_code == 2
    assert result.stderr == shown.group(1)


def test_spe_lines_are_found_in_shell_blocks() -> None:
    block = (
        "$ spe propose acme --lat 48.37  # ranked slots\n"
        "spe replenish && spe queue\n"
        "scripts/demo --crm hubspot\n"
    )
    assert spe_command_lines(block) == [
        ["propose", "acme", "--lat", "48.37"],
        ["replenish"],
        ["queue"],
    ]


@pytest.mark.parametrize(
    "line",
    [
        "pul ana",  # no such command
        "propose acme --lat north",  # not a number
        "book acme fay 2026-12-07T09:45+01:00",  # --by is required
        "calendar",  # a group needs its subcommand
        "pull ana --colour red",  # no such option
    ],
)
def test_a_wrong_spe_line_does_not_parse(line: str) -> None:
    with pytest.raises(CommandDoesNotParse):
        parse_spe_command(line.split())


@pytest.mark.parametrize(
    "line", ["pull ana -n 2", "calendar validate --days 14", "config reference", "sync --dry-run"]
)
def test_a_right_spe_line_parses(line: str) -> None:
    parse_spe_command(line.split())


def test_offline_commands_run_and_a_failing_one_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert runs_offline(["calendar", "validate", "--days", "14"])
    assert not runs_offline(["sync", "--dry-run"]) and not runs_offline(["calendar"])
    assert run_spe_command(["queue"]) is None  # after a `spe init` of its own
    assert (tmp_path / "spe.toml").exists()
    (tmp_path / "spe.toml").write_text("[queue]\ntarget = -5\n", encoding="utf-8")
    failure = run_spe_command(["queue"])
    assert failure and "exited 2" in failure and "is below 0" in failure


def test_crm_commands_run_against_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert needs_crm(["sync", "--dry-run"]) and needs_crm(["check"])
    assert not needs_crm(["queue"])
    server = _hubspot_emulator()
    server.requests.reset_counts()
    assert run_spe_command(["sync", "--dry-run"], crm=True) is None
    assert sum(server.requests.counts().values()) > 0  # it did talk to the CRM
    failure = run_spe_command(["sync", "--dry-run", "--batch", "3"], crm=True)
    assert failure and "exited 2" in failure  # no such option: the CLI's usage error
