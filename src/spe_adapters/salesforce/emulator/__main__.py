"""``python -m spe_adapters.salesforce.emulator``."""

from spe_adapters.salesforce.emulator.server import main

raise SystemExit(main())
