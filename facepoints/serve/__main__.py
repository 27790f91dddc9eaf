"""``python -m facepoints.serve HOST PORT LIMITS_JSON [MODEL]``: a server with any ``Limits``, for tests and benchmarks.

Users start ``facepoints serve``; this entry point takes every limit as JSON,
which the command line does not expose.
"""

import json
import sys

from facepoints.serve.common import Limits
from facepoints.serve.process import run


def main(argv: list[str]) -> None:
    host, port, limits = argv[0], int(argv[1]), Limits(**json.loads(argv[2]))
    run(host, port, model=argv[3] if len(argv) > 3 else None, limits=limits, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
