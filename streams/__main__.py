"""``python -m streams worker``: the Faust worker hosting the ledger consumer and the live-counter consumer."""

from __future__ import annotations

import logging
import sys

from liveledger.settings import get_settings
from streams.app import create_app


def main() -> None:
    argv = sys.argv[1:] or ["worker"]
    if "worker" in argv and not any(a.startswith(("-l", "--loglevel")) for a in argv):
        argv += ["--loglevel", "info"]
    if "worker" in argv and "--with-web" not in argv:
        argv.append("--without-web")  # several workers per host: no fixed port; nothing reads it
    app = create_app(get_settings())
    # Debug records from faust/aiokafka cost more than the work on the hot path; keep them off.
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("streams").setLevel(logging.INFO)
    sys.argv = ["streams", *argv]
    app.main()


if __name__ == "__main__":
    main()
