"""Salesforce adapter settings: connection, authentication and field mapping.

Every default follows the table in the design: the queued object is a Lead
(or an Opportunity) with ``SPE_Status__c``; SPE's key lives in the external-id
field ``SPE_Key__c``; a User's SPE role comes from ``SPE_Role__c`` or from the
``roles`` table in the configuration. Secrets are never stored here: only the
*names* of the environment variables that hold them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from spe_core.errors import ConfigError
from spe_core.model import Role

__all__ = ["DEFAULT_STATUS_VALUES", "FieldMap", "SalesforceSettings"]

#: SPE status (and outcome) -> the ``SPE_Status__c`` picklist value.
DEFAULT_STATUS_VALUES: Mapping[str, str] = {
    "backlog": "Backlog",
    "queued": "Queued",
    "released": "Released",
    "won": "Won",
    "lost": "Lost",
    "disqualified": "Disqualified",
    "appointment_set": "Appointment Set",
    "nurture": "Nurture",
    "expired": "Expired",
}

RATING_TIERS: Mapping[str, int] = {"hot": 2, "warm": 1, "cold": 0}


def _mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class FieldMap:
    """Which Salesforce object and fields hold SPE's data."""

    queued_object: Literal["Lead", "Opportunity"] = "Lead"
    key_field: str = "SPE_Key__c"
    status_field: str = "SPE_Status__c"
    released_at_field: str = "SPE_Released_At__c"
    role_field: str | None = "SPE_Role__c"
    tier_field: str | None = None
    """A number field holding the tier; None: derive it from Lead ``Rating`` (Hot 2, Warm 1,
    Cold 0), or 0 for Opportunities."""
    score_field: str | None = None
    campaign_field: str | None = None
    """Default: ``LeadSource`` on Lead and Opportunity."""
    skills_field: str | None = None
    """A text field of comma-separated skills the opportunity requires (e.g. languages)."""
    task_kind_field: str | None = "SPE_Kind__c"
    """The Task picklist naming the SPE task kind; Tasks with it set are routed by SPE.
    None: do not sync Tasks."""
    calendar_events: bool = True
    """Read members' Events as busy time and write SPE's bookings as Events (upserted
    by ``key_field`` on Event). False: no calendar sync (then set [calendar]
    busy_max_age_hours = 0, or SPE cannot know when field members are free)."""
    status_values: dict[str, str] = attrs.field(
        factory=lambda: dict(DEFAULT_STATUS_VALUES), converter=_mapping
    )

    def __attrs_post_init__(self) -> None:
        if self.queued_object not in ("Lead", "Opportunity"):
            raise ConfigError(
                f"[adapter.salesforce.fields] queued_object {self.queued_object!r} "
                "is not supported.",
                "use 'Lead' or 'Opportunity'.",
            )
        missing = sorted(set(DEFAULT_STATUS_VALUES) - set(self.status_values))
        if missing:
            raise ConfigError(
                f"[adapter.salesforce.fields.status_values] has no picklist value for: "
                f"{', '.join(missing)}.",
                "map every SPE status to a value of your SPE_Status__c picklist.",
            )

    @property
    def account_field(self) -> str:
        """The field naming the account: ``Company`` on Lead, ``AccountId`` on Opportunity."""
        return "Company" if self.queued_object == "Lead" else "AccountId"

    @property
    def campaign(self) -> str:
        """The field holding the source campaign."""
        return self.campaign_field or "LeadSource"

    def status_from_crm(self, value: str | None) -> str | None:
        """The SPE status a picklist value stands for (case-insensitive), or None."""
        if value is None:
            return None
        wanted = value.strip().lower()
        for spe, crm in self.status_values.items():
            if crm.lower() == wanted:
                return spe
        return None


@attrs.frozen
class SalesforceSettings:
    """How to reach the org and read its data.

    ``auth``: ``session`` (an existing session id and instance URL), ``password``
    (OAuth username-password flow) or ``jwt`` (OAuth JWT bearer flow, with a
    connected app's consumer key and private key). The token exchange goes to
    ``login_url``: production ``https://login.salesforce.com``, sandboxes
    ``https://test.salesforce.com``, a My Domain URL, or an emulator.
    """

    auth: Literal["session", "password", "jwt"] = "password"
    login_url: str = "https://login.salesforce.com"
    instance_url: str | None = None
    api_version: str = "59.0"
    session_id_env: str = "SF_SESSION_ID"
    username_env: str = "SF_USERNAME"
    password_env: str = "SF_PASSWORD"
    security_token_env: str = "SF_SECURITY_TOKEN"
    client_id_env: str = "SF_CLIENT_ID"
    client_secret_env: str = "SF_CLIENT_SECRET"
    private_key_file_env: str = "SF_PRIVATE_KEY_FILE"
    ca_bundle: str | None = None
    """A PEM file of certificate authorities to trust (for an emulator or a proxy)."""
    timeout_seconds: float = 30.0
    query_page_size: int = 2000
    slow_down_at: float = 0.90
    """Above this share of the daily API limit the adapter pauses between calls."""
    stop_at: float = 0.98
    """Above this share it stops and reports a transient error until the limit resets."""
    queue_owner_id: str | None = None
    """The User or Queue id that owns records waiting in SPE's queue; records given back
    or whose lease expired return to it. None: leave the owner as it is."""
    roles: dict[str, str] = attrs.field(factory=dict, converter=_mapping)
    """User Id or Username -> SPE role, overriding ``SPE_Role__c``."""
    fields: FieldMap = attrs.field(factory=FieldMap)

    def __attrs_post_init__(self) -> None:
        if self.auth not in ("session", "password", "jwt"):
            raise ConfigError(
                f"[adapter.salesforce] auth {self.auth!r} is not supported.",
                "use 'session', 'password' or 'jwt'.",
            )
        if self.auth == "session" and not self.instance_url:
            raise ConfigError(
                "[adapter.salesforce] auth = 'session' needs instance_url.",
                "set instance_url = 'https://yourdomain.my.salesforce.com'.",
            )
        if not self.login_url.startswith("https://"):
            raise ConfigError(
                f"[adapter.salesforce] login_url {self.login_url!r} must use https.",
                "use https://login.salesforce.com, https://test.salesforce.com or your "
                "My Domain URL.",
            )
        if not 200 <= self.query_page_size <= 2000:
            raise ConfigError(
                f"[adapter.salesforce] query_page_size {self.query_page_size} is outside "
                "200..2000.",
                "Salesforce pages queries in 200 to 2000 records; use 2000 for the fewest calls.",
            )
        for user, role in self.roles.items():
            try:
                Role.parse(role)
            except Exception:
                raise ConfigError(
                    f"[adapter.salesforce.roles] {user!r} has role {role!r}, not an SPE role.",
                    f"use one of: {', '.join(r.value for r in Role)}.",
                ) from None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> SalesforceSettings:
        """Settings from the ``[adapter.salesforce]`` table of spe.toml (validated)."""
        data = dict(options)
        fields = data.pop("fields", {}) or {}
        known = {a.name for a in attrs.fields(cls)} - {"fields"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"[adapter.salesforce] {unknown[0]} is not a known setting.",
                f"known settings: {', '.join(sorted(known | {'fields'}))}.",
            )
        field_names = {a.name for a in attrs.fields(FieldMap)}
        unknown = sorted(set(fields) - field_names)
        if unknown:
            raise ConfigError(
                f"[adapter.salesforce.fields] {unknown[0]} is not a known field setting.",
                f"known: {', '.join(sorted(field_names))}.",
            )
        try:
            return cls(fields=FieldMap(**fields), **data)
        except TypeError as exc:
            raise ConfigError(f"[adapter.salesforce]: {exc}.", "check the value types.") from None

    def secret(self, env: str, what: str) -> str:
        """The value of the environment variable ``env`` (never logged)."""
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"the Salesforce {what} is not set: environment variable {env} is empty.",
                f"export {env}=... in the environment that runs spe (never in spe.toml).",
            )
        return value
