"""The HubSpot adapter (hubspot-api-client, CRM v3), its webhook receiver and its local emulator.

Enable it in ``spe.toml`` with ``[adapter] name = "hubspot"``; see
``docs/hubspot.md`` for the properties to create, the private app's scopes
and the webhook set-up.
"""
