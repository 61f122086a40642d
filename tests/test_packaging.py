"""The wheel as users get it: built, then installed into fresh virtualenvs with no
extra, each extra alone and [all]; `spe --help` and a smoke command run in each.

Every third-party import must be declared in the extra that needs it: each venv
imports every module its extras should make importable, so an undeclared import
fails here. The dependencies are downloaded once into a wheel cache (pytest's cache
folder, keyed by pyproject.toml's dependencies) and each venv installs from it
offline, so a run costs one venv creation and one local install per case."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent

# module prefixes each extra makes importable (beyond the base install's)
EXTRA_MODULES = {
    "salesforce": ["spe_adapters.salesforce", "spe_adapters.emulator_kit"],
    "hubspot": ["spe_adapters.hubspot", "spe_adapters.emulator_kit"],
    "postgres": ["spe_core.store.postgres"],
    "simulation": ["spe_core.simulation"],
    "testing": [
        "spe_core.testing",
        "spe_adapters.salesforce.testing",
        "spe_adapters.hubspot.testing",
        "spe_adapters.emulator_kit.fixtures",
    ],
}
NEEDS_AN_EXTRA = [*sorted({m for p in EXTRA_MODULES.values() for m in p}), "spe_demo"]

IMPORT_ALL = """
import importlib, pkgutil, sys
wanted, unwanted = sys.argv[1].split(","), [p for p in sys.argv[2].split(",") if p]
def under(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)
names = []
for top in ("spe_core", "spe_adapters", "spe_demo"):
    package = importlib.import_module(top) if under(top, wanted) or top != "spe_demo" else None
    if package is None:
        continue
    names.append(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        names.append(info.name)
count = 0
for name in names:
    if name.endswith("__main__") or under(name, unwanted) or not under(name, wanted):
        continue
    importlib.import_module(name)
    count += 1
print(count)
"""


def others(extra: str) -> list[str]:
    """The modules that need an extra other than ``extra``."""
    return [m for m in NEEDS_AN_EXTRA if m not in EXTRA_MODULES.get(extra, [])]


# extra -> (what must import, what not to try, the smoke command after `spe --help`)
CASES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "": (["spe_core", "spe_adapters"], NEEDS_AN_EXTRA, ["check", "--json"]),
    "salesforce": (["spe_core", "spe_adapters"], others("salesforce"), ["adapters", "--json"]),
    "hubspot": (["spe_core", "spe_adapters"], others("hubspot"), ["adapters", "--json"]),
    "postgres": (["spe_core"], others("postgres"), ["queue", "--json"]),
    "simulation": (["spe_core"], others("simulation"), ["queue", "--json"]),
    "testing": (["spe_core"], others("testing"), ["queue", "--json"]),
    "all": (["spe_core", "spe_adapters", "spe_demo"], [], ["adapters", "--json"]),
}


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT)
    (found,) = dist.glob("spe_sdk-*.whl")
    return found


@pytest.fixture(scope="module")
def wheel_cache(wheel: Path, request: pytest.FixtureRequest) -> Path:
    """Every dependency of [all] as wheels, downloaded once per set of dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    key = json.dumps([project["dependencies"], project["optional-dependencies"]])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    cache = Path(request.config.cache.mkdir(f"spe-wheels-{digest}"))
    if not (cache / "complete").exists():
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        run(*pip, "download", "-q", "-d", cache, f"{wheel}[all]")
        for own in cache.glob("spe_sdk-*.whl"):
            own.unlink()  # the project's own wheel is built fresh every run
        (cache / "complete").write_text("")
    return cache


@pytest.mark.parametrize("extra", list(CASES))
def test_the_wheel_installs_and_runs_with_each_extra(
    extra: str, wheel: Path, wheel_cache: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    run(
        sys.executable,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--python",
        python,
        "install",
        "-q",
        "--no-compile",
        "--no-index",
        "--find-links",
        wheel_cache,
        target,
    )
    installed = time.monotonic()
    spe = env_dir / "bin" / "spe"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SPE_"))}
    assert "Usage: spe" in run(spe, "--help", cwd=tmp_path, env=env)
    wanted, unwanted, smoke = CASES[extra]
    imported = run(
        python, "-c", IMPORT_ALL, ",".join(wanted), ",".join(unwanted), cwd=tmp_path, env=env
    )
    assert int(imported) > 0
    work = tmp_path / "work"
    work.mkdir()
    run(spe, "init", cwd=work, env=env)
    out = run(spe, *smoke, cwd=work, env=env)
    assert json.loads(out) is not None
    if extra == "":  # an adapter whose extra is missing names the extra to install
        toml = (work / "spe.toml").read_text()
        (work / "spe.toml").write_text(re.sub(r'(?m)^name = ""', 'name = "hubspot"', toml, count=1))
        done = subprocess.run(
            [str(spe), "check"], cwd=work, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "pip install 'spe-sdk[hubspot]'" in done.stdout
        assert "Traceback" not in done.stdout + done.stderr
    if extra in ("salesforce", "hubspot", "all"):
        names = {row["name"]: row["class"] for row in json.loads(out)}
        for crm in ("salesforce", "hubspot") if extra == "all" else (extra,):
            assert "MissingExtra" not in names[crm]
    print(
        f"[{extra or 'no extra'}] install {installed - started:.1f} s, "
        f"smoke {time.monotonic() - installed:.1f} s"
    )
