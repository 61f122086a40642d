"""CRM adapters for spe-sdk: Salesforce and HubSpot, each with a local emulator."""
