"""The ``begateway-async`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line (the simulator, demo and batch runner arrive with them)."""
    args = sys.argv[1:] if argv is None else argv
    print("begateway-async: no command yet; see the README", args, file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
