"""The demo team both emulators seed, and the ``spe.toml`` lines for what a CRM does
not hold about it.

Eight people in the roles of a Sales Process Engineering team: three inside
salespeople who pull from the queue, a field salesperson with a home base and
working hours, the sales coordinator who fills his calendar (SPE runs them 1:1),
customer service, engineering and promotions. Each CRM's seed writes what its
records hold (names, e-mails, roles; a Salesforce User's time zone and address);
``spe emulator <crm>`` prints the rest as ``[[team]]`` tables
(:func:`team_tables`), keyed by the ids the seed gave.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["DEMO_TEAM", "DemoPerson", "team_tables", "toml_string"]


@attrs.frozen
class DemoPerson:
    """One person of the demo team."""

    first_name: str
    last_name: str
    role: str
    """The SPE role (``spe_core.model.Role`` value)."""
    home_base: tuple[float, float, str] | None = None
    """A field salesperson's home base: latitude, longitude, city."""
    coordinator: str | None = None
    """A field salesperson's sales coordinator, by e-mail."""
    hours: str | None = None
    """Working hours, Monday to Friday, local time (``spe.toml``'s ``hours``)."""
    time_zone: str = "Europe/Berlin"

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def email(self) -> str:
        """The e-mail, also the Salesforce username."""
        return f"{self.first_name.lower()}@demo.example"


DEMO_TEAM: tuple[DemoPerson, ...] = (
    DemoPerson("Ana", "Ruiz", "inside_sales"),
    DemoPerson("Ben", "Okafor", "inside_sales"),
    DemoPerson("Chloé", "Martin", "inside_sales"),
    DemoPerson(
        "Ivan",
        "Petrov",
        "field_sales",
        home_base=(48.1374, 11.5755, "Munich"),
        coordinator="kai@demo.example",
        hours="08:00-17:00",
    ),
    DemoPerson("Kai", "Müller", "sales_coordinator"),
    DemoPerson("Max", "Olsen", "customer_service"),
    DemoPerson("Nora", "Ali", "engineering"),
    DemoPerson("Gina", "Rossi", "promotions"),
)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def team_tables(ids: Mapping[str, str], *, time_zone: bool) -> list[str]:
    """``[[team]]`` tables (as lines) for what the CRM does not hold about the demo
    team: each field salesperson's coordinator and working hours, and with
    ``time_zone`` every member's time zone. ``ids`` maps each e-mail to the CRM id
    the seed gave; people the CRM does not have (not in ``ids``) are left out."""
    lines: list[str] = []
    for person in DEMO_TEAM:
        member_id = ids.get(person.email)
        if member_id is None:
            continue
        values: list[str] = []
        if time_zone:
            values.append(f"time_zone = {toml_string(person.time_zone)}")
        if person.coordinator is not None and person.coordinator in ids:
            coordinator = next(p for p in DEMO_TEAM if p.email == person.coordinator)
            values.append(
                f"coordinator_id = {toml_string(ids[person.coordinator])}  # {coordinator.name}"
            )
        if person.hours is not None:
            values.append(f"hours = {toml_string(person.hours)}")
        if values:
            role = person.role.replace("_", " ")
            lines += ["", "[[team]]", f"id = {toml_string(member_id)}  # {person.name}, {role}"]
            lines += values
    return lines
