"""Throughput of augcomp's codecs against torchvision, kornia, Pillow and simplejpeg, on the same batch.

A thin wrapper around :mod:`augcomp.bench` (which ``augcomp bench`` runs too; both take the same options) that adds
the project's performance goals (``goals.py``)::

    python benchmarks/throughput.py                       # batch 64 of 224x224 crops, CUDA if present
    python benchmarks/throughput.py --device cpu --repeats 7 --out results/bench
    python benchmarks/throughput.py --rows 'augcomp-*,kornia-random-jpeg*'
    python benchmarks/throughput.py --rows 'codec:*'      # every registered codec, fixed level and bpp targets
    python benchmarks/throughput.py --list                # the row keys
    python benchmarks/throughput.py --quick --out bench-smoke

Writes ``throughput.md`` and ``throughput.json`` to ``--out`` (default ``results/bench``) and prints the table, with
each performance goal marked PASS or MISS.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from goals import section  # this folder is on sys.path when a script in it runs

from augcomp.bench import main as bench_main


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the throughput benchmark with ``argv`` (default: the command line); returns the exit status."""
    return bench_main(argv, prog="throughput.py", sections=[section])


if __name__ == "__main__":
    sys.exit(main())
