"""``python -m spherenet``: the same as the ``spherenet`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
