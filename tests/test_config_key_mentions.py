"""Every ``[section] key`` that a message, a fix or a docstring in src names exists.

The keys are those of the configuration schema (``spe_core.config.SCHEMA``, which
``spe config reference`` prints), of the tables the reference describes in prose
(``[routing]``, ``[flow]``) and of the adapters' own tables (their settings classes,
which validate ``[adapter.NAME]``). A mapping table (``[adapter.hubspot.roles]``,
``[flow.stages]``) has no fixed keys: any word may follow it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import attrs

from spe_adapters.hubspot.settings import HubSpotSettings
from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core import config

SRC = Path(__file__).resolve().parent.parent / "src"
MENTION = re.compile(r"\[([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)\] ([a-z][a-z0-9_]*)")


def _settings_tables(prefix: str, cls: type[Any]) -> tuple[dict[str, set[str]], set[str]]:
    """The keys of ``[prefix]`` and of its nested tables; the names of its mapping tables."""
    tables: dict[str, set[str]] = {prefix: set()}
    mappings: set[str] = set()
    for field in attrs.fields(attrs.resolve_types(cls)):
        tables[prefix].add(field.name)
        name = f"{prefix}.{field.name}"
        if isinstance(field.type, type) and attrs.has(field.type):
            nested, nested_mappings = _settings_tables(name, field.type)
            tables.update(nested)
            mappings |= nested_mappings
        elif str(field.type).startswith("dict"):
            mappings.add(name)
    return tables, mappings


def known_keys() -> tuple[dict[str, set[str]], set[str]]:
    """Section -> its keys, and the mapping tables (any key)."""
    tables = {s.name: {k.name for k in s.keys} for s in config.SCHEMA}
    tables["routing"] = {"default_capacity", "allow_sales_for_transactional_work_UNSAFE"}
    tables["flow"] = {"crm_stages", "stages", "phases"}
    tables["routing.KIND"] = {
        "roles",
        "strategy",
        "weight",
        "skills_match",
        "account_continuity",
        "overflow_role",
        "sla_accept_minutes",
        "sla_complete_minutes",
    }
    mappings = {"flow.stages", "team"}
    for prefix, cls in [
        ("adapter.salesforce", SalesforceSettings),
        ("adapter.hubspot", HubSpotSettings),
    ]:
        more, more_mappings = _settings_tables(prefix, cls)
        tables.update(more)
        mappings |= more_mappings
    return tables, mappings


def _texts(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module; an f-string's replacement fields read as {}."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                for v in node.values
            )
            out.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def _third_party_adapter(section: str, tables: dict[str, set[str]]) -> bool:
    """``[adapter.mycrm]``: an adapter of another package, which validates its own table."""
    parts = section.split(".")
    return len(parts) > 1 and parts[0] == "adapter" and ".".join(parts[:2]) not in tables


def wrong_mentions(texts: list[tuple[str, str]]) -> list[str]:
    tables, mappings = known_keys()
    wrong = []
    for where, text in texts:
        for section, key in MENTION.findall(" ".join(text.split())):
            if section in mappings or _third_party_adapter(section, tables):
                continue
            if section.startswith("routing."):  # [routing.KIND], any task kind
                section = "routing.KIND"
            if section not in tables:
                wrong.append(f"{where}: [{section}] is not a table of spe.toml")
            elif key not in tables[section]:
                wrong.append(f"{where}: [{section}] has no key {key!r}")
    return wrong


def test_every_key_named_in_src_exists() -> None:
    texts = [
        (f"{path.relative_to(SRC)}:{line}", text)
        for path in sorted(SRC.rglob("*.py"))
        for line, text in _texts(path)
    ]
    mentions = [t for t in texts if MENTION.search(t[1])]
    assert len(mentions) > 10  # the scan sees the messages
    assert not wrong_mentions(texts)


def test_every_key_named_in_the_docs_exists() -> None:
    """Prose and TOML blocks alike (``[section]`` then its first key); not Python blocks."""
    root = SRC.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    python = re.compile(r"^```python\n.*?^```$", re.M | re.S)
    texts = [(page.name, python.sub("", page.read_text(encoding="utf-8"))) for page in pages]
    assert not wrong_mentions(texts)


def test_a_wrong_key_is_found() -> None:
    assert wrong_mentions(
        [
            ("a", "set [calendar] busy_max_age = 0"),
            ("b", "[adapter.salesforce.status_values] has no picklist value"),
            ("c", "[calendar] busy_max_age_hours = 0, [adapter.hubspot.roles] or teams"),
            ("d", "[adapter.hubspot] host must use https; [adapter.salesforce.fields] owner"),
            ("e", "[adapter.mycrm] token_env, [adapter]\nname = 'x'"),
        ]
    ) == [
        "a: [calendar] has no key 'busy_max_age'",
        "b: [adapter.salesforce.status_values] is not a table of spe.toml",
        "d: [adapter.salesforce.fields] has no key 'owner'",
    ]
