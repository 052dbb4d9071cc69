"""``python -m begateway_async``: the ``begateway-async`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
