"""``python -m gradmatch``: the command line (see :mod:`gradmatch.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
