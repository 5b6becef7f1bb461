"""``python -m augcomp.bench``: the throughput benchmark (the same as ``augcomp bench``)."""

import sys

from augcomp.bench.command import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m augcomp.bench"))
