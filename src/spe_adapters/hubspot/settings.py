"""HubSpot adapter settings: connection, the queued object, field mapping and roles.

Defaults: the queued object is a deal in the ``default`` pipeline with the
custom property ``spe_status`` set; SPE's key lives in the unique property
``spe_key``; an owner's SPE role comes from ``roles`` (owner id or email) or
``team_roles`` (HubSpot team name). Secrets are never stored here: only the
*names* of the environment variables that hold them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from spe_core.errors import ConfigError
from spe_core.model import Role

__all__ = ["DEFAULT_STATUS_VALUES", "FieldMap", "HubSpotSettings"]

#: SPE status (and outcome) -> the internal value of the ``spe_status`` dropdown option.
DEFAULT_STATUS_VALUES: Mapping[str, str] = {
    "backlog": "backlog",
    "queued": "queued",
    "released": "released",
    "won": "won",
    "lost": "lost",
    "disqualified": "disqualified",
    "appointment_set": "appointment_set",
    "nurture": "nurture",
    "expired": "expired",
}


def _mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class FieldMap:
    """Which HubSpot properties hold SPE's data (internal property names)."""

    key_property: str = "spe_key"
    """A single-line text property with **unique values** on the queued object and tasks."""
    status_property: str = "spe_status"
    released_at_property: str = "spe_released_at"
    account_property: str | None = None
    """The property naming the account; default ``spe_account`` (deals) or ``company``
    (contacts)."""
    tier_property: str | None = "spe_tier"
    score_property: str | None = "spe_score"
    campaign_property: str | None = "hs_analytics_source"
    """Read only when it is a HubSpot-calculated (``hs_``) property."""
    skills_property: str | None = None
    """A text property of comma-separated skills the opportunity requires."""
    task_kind_property: str | None = "spe_task_kind"
    """The task property naming the SPE task kind; tasks with it set are routed by SPE.
    None: do not sync tasks."""
    calendar_meetings: bool = True
    """Read owners' meetings as busy time and write SPE's bookings as meetings (upserted
    by ``key_property``, which must then also exist, unique, on meetings). False: no
    calendar sync (then set [calendar] busy_max_age_hours = 0)."""
    status_values: dict[str, str] = attrs.field(
        factory=lambda: dict(DEFAULT_STATUS_VALUES), converter=_mapping
    )

    def __attrs_post_init__(self) -> None:
        missing = sorted(set(DEFAULT_STATUS_VALUES) - set(self.status_values))
        if missing:
            raise ConfigError(
                f"[adapter.hubspot.fields.status_values] has no option for: {', '.join(missing)}.",
                "map every SPE status to an internal value of your spe_status property.",
            )

    def status_from_crm(self, value: str | None) -> str | None:
        """The SPE status an option value stands for (case-insensitive), or None."""
        if value is None:
            return None
        wanted = value.strip().lower()
        for spe, crm in self.status_values.items():
            if crm.lower() == wanted:
                return spe
        return None


@attrs.frozen
class HubSpotSettings:
    """How to reach the portal and read its data.

    ``host`` is HubSpot's API host (or the emulator's); the private-app access
    token is read from the environment variable named by ``access_token_env``
    on every call, so a rotated token is picked up without a restart.
    """

    host: str = "https://api.hubapi.com"
    access_token_env: str = "HUBSPOT_ACCESS_TOKEN"
    app_secret_env: str = "HUBSPOT_APP_SECRET"
    """The app's client secret, for verifying webhook signatures."""
    timeout_seconds: float = 30.0
    queued_object: Literal["deals", "contacts"] = "deals"
    pipeline: str | None = "default"
    """Deals: only deals of this pipeline are read; deals SPE creates go into it."""
    stage: str = "appointmentscheduled"
    """Deals SPE creates start in this stage of ``pipeline``."""
    search_page_size: int = 200
    search_result_cap: int = 10_000
    """HubSpot's search returns at most this many results for one query. Kept for
    compatibility: every page is a new keyset query, so no query comes near it."""
    search_requests_per_second: float = 4.0
    """The adapter's own budget of search calls per second (HubSpot limits search per
    token); 0: no budget."""
    webhook_min_signature_version: str = "v1"
    """The oldest webhook signature version the receiver accepts: ``v1`` (what webhook-API
    subscriptions send), ``v2`` or ``v3`` (only requests with v3 headers)."""
    webhook_max_future_seconds: float = 60.0
    """How far ahead of this server's clock a v3 webhook timestamp may be (clock skew)."""
    queue_owner_id: str | None = None
    """The owner of records waiting in SPE's queue; records given back return to it.
    None: their owner is cleared."""
    default_time_zone: str = "UTC"
    """Owners carry no time zone in HubSpot; members get this one."""
    roles: dict[str, str] = attrs.field(factory=dict, converter=_mapping)
    """Owner id or email -> SPE role."""
    team_roles: dict[str, str] = attrs.field(factory=dict, converter=_mapping)
    """HubSpot team name -> SPE role, for owners not named in ``roles``."""
    home_bases: dict[str, Any] = attrs.field(factory=dict, converter=_mapping)
    """Owner id or email -> a table ``{lat, lon, address}``: field members' home bases
    (HubSpot owners carry no location; the calendar's travel rules need one)."""
    fields: FieldMap = attrs.field(factory=FieldMap)

    def __attrs_post_init__(self) -> None:
        if self.queued_object not in ("deals", "contacts"):
            raise ConfigError(
                f"[adapter.hubspot] queued_object {self.queued_object!r} is not supported.",
                "use 'deals' or 'contacts'.",
            )
        if not self.host.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ConfigError(
                f"[adapter.hubspot] host {self.host!r} must use https.",
                "use https://api.hubapi.com (or http://127.0.0.1:PORT for the emulator).",
            )
        if not 1 <= self.search_page_size <= 200:
            raise ConfigError(
                f"[adapter.hubspot] search_page_size {self.search_page_size} is outside 1..200.",
                "HubSpot's search returns at most 200 records a page; use 200.",
            )
        if not self.search_page_size <= self.search_result_cap <= 10_000:
            raise ConfigError(
                f"[adapter.hubspot] search_result_cap {self.search_result_cap} is outside "
                f"{self.search_page_size}..10000.",
                "leave it at 10000, HubSpot's limit.",
            )
        if self.search_requests_per_second < 0:
            raise ConfigError(
                "[adapter.hubspot] search_requests_per_second must not be negative.",
                "use 4 (HubSpot's documented search limit per token), or 0 for no budget.",
            )
        if self.webhook_min_signature_version not in ("v1", "v2", "v3"):
            raise ConfigError(
                "[adapter.hubspot] webhook_min_signature_version "
                f"{self.webhook_min_signature_version!r} is not a signature version.",
                "use v1 (accept every version HubSpot sends), v2 or v3.",
            )
        if not 0 <= self.webhook_max_future_seconds <= 300:
            raise ConfigError(
                "[adapter.hubspot] webhook_max_future_seconds "
                f"{self.webhook_max_future_seconds} is outside 0..300.",
                "use 60 (the default); fix the server's clock (NTP) rather than widen it.",
            )
        for table, roles in (("roles", self.roles), ("team_roles", self.team_roles)):
            for who, role in roles.items():
                try:
                    Role.parse(role)
                except Exception:
                    raise ConfigError(
                        f"[adapter.hubspot.{table}] {who!r} has role {role!r}, not an SPE role.",
                        f"use one of: {', '.join(r.value for r in Role)}.",
                    ) from None

    @property
    def last_modified_property(self) -> str:
        """The queued object's last-modified property (contacts differ from deals)."""
        return "lastmodifieddate" if self.queued_object == "contacts" else "hs_lastmodifieddate"

    @property
    def created_property(self) -> str:
        """The queued object's creation-date property."""
        return "createdate"

    @property
    def account_property(self) -> str:
        """The property naming the account."""
        if self.fields.account_property:
            return self.fields.account_property
        return "company" if self.queued_object == "contacts" else "spe_account"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> HubSpotSettings:
        """Settings from the ``[adapter.hubspot]`` table of spe.toml (validated)."""
        data = dict(options)
        fields = data.pop("fields", {}) or {}
        known = {a.name for a in attrs.fields(cls)} - {"fields"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"[adapter.hubspot] {unknown[0]} is not a known setting.",
                f"known settings: {', '.join(sorted(known | {'fields'}))}.",
            )
        field_names = {a.name for a in attrs.fields(FieldMap)}
        unknown = sorted(set(fields) - field_names)
        if unknown:
            raise ConfigError(
                f"[adapter.hubspot.fields] {unknown[0]} is not a known field setting.",
                f"known: {', '.join(sorted(field_names))}.",
            )
        try:
            return cls(fields=FieldMap(**fields), **data)
        except TypeError as exc:
            raise ConfigError(f"[adapter.hubspot]: {exc}.", "check the value types.") from None

    def secret(self, env: str, what: str) -> str:
        """The value of the environment variable ``env`` (never logged)."""
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"the HubSpot {what} is not set: environment variable {env} is empty.",
                f"export {env}=... in the environment that runs spe (never in spe.toml).",
            )
        return value
