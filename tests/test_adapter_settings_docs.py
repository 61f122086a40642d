"""docs/salesforce.md and docs/hubspot.md document every key their adapter's settings accept."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from spe_adapters.hubspot import settings as hubspot
from spe_adapters.salesforce import settings as salesforce

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize(
    ("page", "classes"),
    [
        ("hubspot.md", [hubspot.HubSpotSettings, hubspot.FieldMap]),
        ("salesforce.md", [salesforce.SalesforceSettings, salesforce.FieldMap]),
    ],
)
def test_every_setting_has_a_row_in_its_page(page: str, classes: list[type[object]]) -> None:
    rows = [
        line for line in (DOCS / page).read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    ]
    missing = [
        f.name
        for cls in classes
        for f in attrs.fields(cls)  # type: ignore[arg-type]
        if f.name != "fields" and not any(f"`{f.name}`" in row.split(" | ")[0] for row in rows)
    ]
    assert not missing, f"docs/{page} has no table row for {missing}"
