"""docs/testing.md lists every public name of the test kit, and its snippets run."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import spe_core
import spe_core.testing

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "testing.md"
SRC = Path(spe_core.__file__).resolve().parent.parent

# Snippets run with few examples: the point is that they run, not how hard.
QUICK = """
from hypothesis import HealthCheck, settings
settings.register_profile(
    "snippets", max_examples=3, stateful_step_count=6, deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile("snippets")
"""


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", PAGE.read_text(encoding="utf-8"), re.M | re.S)


def _files_and_scripts() -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    scripts: list[str] = []
    for block in _blocks():
        header = re.match(r"# (\w+\.py)\n", block)
        if header:
            files[header.group(1)] = block
        else:
            scripts.append(block)
    return files, scripts


def test_the_page_names_every_public_name_of_the_kit() -> None:
    text = PAGE.read_text(encoding="utf-8")
    kit = spe_core.testing
    modules = [kit] + [
        importlib.import_module(m.name)
        for m in pkgutil.iter_modules(kit.__path__, f"{kit.__name__}.")
    ]
    missing = [
        f"{module.__name__}.{name}"
        for module in modules
        for name in module.__all__
        if module.__name__ not in text or name not in text
    ]
    assert not missing, f"docs/testing.md does not describe {missing}"


def test_the_pages_snippets_run(tmp_path: Path) -> None:
    files, scripts = _files_and_scripts()
    assert any(name.startswith("test_") for name in files) and scripts
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(QUICK, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SRC)])}
    env.pop("HYPOTHESIS_PROFILE", None)
    for n, script in enumerate(scripts):
        (tmp_path / f"script_{n}.py").write_text(script, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(tmp_path / f"script_{n}.py")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, f"snippet {n} failed:\n{script}\n{done.stderr}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for name in files:
        if name.startswith("test_"):
            assert f"{name}::" in done.stdout, f"{name} collected no test"
