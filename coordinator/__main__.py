"""`python -m coordinator ...` is the `islands` command (see `coordinator.cli`)."""

import sys

from coordinator.cli import main

if __name__ == "__main__":
    sys.exit(main())
