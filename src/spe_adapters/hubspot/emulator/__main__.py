"""``python -m spe_adapters.hubspot.emulator``."""

from spe_adapters.hubspot.emulator.server import main

raise SystemExit(main())
