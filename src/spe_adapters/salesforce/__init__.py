"""The Salesforce adapter (simple-salesforce) and its local emulator.

Enable it in ``spe.toml`` with ``[adapter] name = "salesforce"``; see
``docs/salesforce.md`` for the fields to create and the permissions needed.
"""
