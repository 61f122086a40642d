"""deploy/: the systemd unit and the container file run a valid ``spe serve`` command
line, with the drain, the restart policy, the hardening and the health check the
deployment page promises. No image is built (that needs the network)."""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from spe_core.cli import app
from spe_serve.cli import DRAIN_SECONDS
from tests.doc_examples import CommandDoesNotParse, parse_spe_command

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "spe-serve.service"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"


def parse_spe(argv: list[str]) -> dict[str, Any]:
    """``argv`` (after ``spe``) parsed as the ``spe`` command parses it, without running
    it: an unknown flag or a bad value raises; the result is ``spe serve``'s parameters."""
    assert argv[:1] == ["serve"], argv
    parse_spe_command(argv)  # the docs' check: names, types, required arguments
    helped = CliRunner().invoke(app, [*argv, "--help"])  # and the real command's --help
    assert helped.exit_code == 0, helped.output
    command = typer.main.get_command(app)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    with serve.make_context("serve", list(argv[1:])) as ctx:
        return dict(ctx.params)


def test_parse_spe_refuses_what_spe_refuses() -> None:
    assert parse_spe(["serve", "--port", "8000"])["port"] == 8000
    with pytest.raises(CommandDoesNotParse, match="--prot"):
        parse_spe(["serve", "--prot", "8000"])
    with pytest.raises(CommandDoesNotParse, match="eighty"):
        parse_spe(["serve", "--port", "eighty"])


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_runs_a_valid_spe_serve_with_drain_restart_and_hardening() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "spe"
    params = parse_spe(argv[1:])
    assert (params["host"], params["port"]) == ("127.0.0.1", 8000)
    assert service["User"] not in ("root", "0") and service["Group"] == service["User"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert DRAIN_SECONDS < int(service["TimeoutStopSec"]) <= DRAIN_SECONDS + 30
    assert service["EnvironmentFile"] == "/etc/spe/spe.env"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert service[key] == value, key
    # the SQLite folder (the working directory, sqlite:///spe.db) stays writable
    assert service["WorkingDirectory"] in service["ReadWritePaths"].split()
    assert "SPE_STORE=" in (ROOT / "deploy" / "spe.env.example").read_text(encoding="utf-8")


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="needs systemd-analyze to verify the unit (Debian: apt-get install systemd)",
)
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    """verify checks every directive and value; it needs the ExecStart program to exist,
    so a copy runs a stand-in at a path that does."""
    stand_in = tmp_path / "spe"
    stand_in.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stand_in.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8").replace("/opt/spe/bin/spe", str(stand_in))
    assert str(stand_in) in text
    unit = tmp_path / UNIT.name
    unit.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # an unknown key or a bad value is only a warning


def _instructions() -> list[tuple[str, str]]:
    """The container file's (INSTRUCTION, arguments), continuation lines joined."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        lines.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the file ends inside a continued line"
    return lines


def test_every_copy_source_exists_in_the_source_tree() -> None:
    stages = set()
    copies = 0
    for word, args in _instructions():
        if word == "FROM":
            assert args.split()[0] == "python:3.11-slim", args
            found = re.search(r"\bAS\s+(\S+)", args, re.I)
            if found:
                stages.add(found.group(1))
        if word == "COPY":
            parts = shlex.split(args)
            flags = [p for p in parts if p.startswith("--")]
            sources = [p for p in parts if not p.startswith("--")][:-1]
            from_stage = [f.partition("=")[2] for f in flags if f.startswith("--from=")]
            if from_stage:
                assert from_stage[0] in stages, f"COPY --from an unknown stage: {args}"
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the source tree"
                copies += 1
    assert copies >= 2 and len(stages) == 1  # multi-stage: a build stage, then the image


def test_the_image_runs_a_valid_spe_serve_as_a_user_with_a_health_check() -> None:
    found = _instructions()
    words = [w for w, _ in found]
    args = dict(found)  # the last of each, as the image keeps it
    run = " ".join(a for w, a in found if w == "RUN")
    assert re.search(r"pip install \"\.\[[a-z,]*serve[a-z,]*\]\"", run), run
    user = args["USER"]
    assert user not in ("root", "0") and words.index("USER") < words.index("ENTRYPOINT")
    argv = json.loads(args["ENTRYPOINT"]) + json.loads(args["CMD"])
    assert argv[0] == "spe"
    params = parse_spe(argv[1:])
    assert params["host"] == "0.0.0.0"
    port = params["port"] or 8000
    assert args["EXPOSE"] == str(port)
    health = args["HEALTHCHECK"]
    probe = json.loads(health[health.index("CMD") + 3 :].strip())
    assert probe[:2] == ["python", "-c"]
    ast.parse(probe[2])  # valid Python
    assert f"http://127.0.0.1:{port}/healthz" in probe[2]
    stop = re.search(r"--time (\d+)", CONTAINERFILE.read_text(encoding="utf-8"))
    assert stop is not None and int(stop.group(1)) > DRAIN_SECONDS


def test_the_deployment_page_includes_the_files_themselves() -> None:
    """Included with pymdownx.snippets (mkdocs build --strict fails on a missing one),
    so the page cannot drift from the files."""
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for name in ("deploy/spe-serve.service", "deploy/Containerfile", "deploy/Caddyfile"):
        assert f'--8<-- "{name}"' in page, name
        assert (ROOT / name).is_file()
    assert "health_uri /readyz" in (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
