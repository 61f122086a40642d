"""The HubSpot adapter (hubspot-api-client) and its local emulator."""
