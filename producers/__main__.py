"""``python -m producers``: the simulator's help (``python -m producers.simulator`` runs it)."""

from __future__ import annotations

import sys

from producers.simulator import build_parser, main

if __name__ == "__main__":
    if len(sys.argv) == 1:
        build_parser().print_help()
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
