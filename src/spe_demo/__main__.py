"""``python -m spe_demo``: run the demo (see ``--help``)."""

from __future__ import annotations

import sys

from spe_demo.demo import main

if __name__ == "__main__":
    sys.exit(main())
