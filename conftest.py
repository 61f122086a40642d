"""The documentation's examples run as tests (Sybil).

Every fenced ``python`` block of README.md and docs/*.md runs, in page order, in
one namespace per page, so a page's blocks may build on each other. A block that
is deliberately a fragment says so with ``<!-- skip: next -->`` just above it.
Each page runs in a fresh temporary folder (``sqlite:///spe.db`` lands there).

Every ``spe`` command line in a ``console`` or ``bash`` block is parsed by the
real command line (subcommand, options, argument types and required arguments).
Those that need no CRM, no data and no server (init, team, queue, report, ...:
``tests.doc_examples.OFFLINE``) then run for real in the page's folder, on a fresh
``spe init`` configuration; ``spe check`` and ``spe sync`` run against the HubSpot
emulator's demo portal (``WITH_CRM``); each must exit 0. The rest (pull, propose,
book, emulator, ...) need a store with data or are servers: parsed only.

docs/testing.md is run by tests/test_docs_testing.py instead: its blocks are
files (``# test_x.py``) that pytest must collect, not one script.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser
from tests.doc_examples import DOC_EXCLUDES, DOC_PATTERNS, evaluate_shell_block


def _enter_tmpdir(namespace: dict[str, Any]) -> None:
    namespace["_doc_cwd"] = os.getcwd()
    namespace["_doc_tmp"] = tempfile.mkdtemp(prefix="spe-doc-")
    os.chdir(namespace["_doc_tmp"])


def _leave_tmpdir(namespace: dict[str, Any]) -> None:
    engine = namespace.get("engine")  # the page's engine, if it made one: release its store
    close = getattr(engine, "close", None) or getattr(getattr(engine, "store", None), "close", None)
    if callable(close):
        close()
    os.chdir(namespace["_doc_cwd"])
    shutil.rmtree(namespace["_doc_tmp"], ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(),
        CodeBlockParser("console", evaluate_shell_block),
        CodeBlockParser("bash", evaluate_shell_block),
        SkipParser(),
    ],
    patterns=DOC_PATTERNS,
    excludes=DOC_EXCLUDES,
    setup=_enter_tmpdir,
    teardown=_leave_tmpdir,
).pytest()
