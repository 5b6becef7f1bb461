"""The store's commands of ``augcomp``: ``precompute``, ``store verify`` and ``store info``.

::

    augcomp precompute --task seg --data-root ADE --split validation --codecs jpeg,webp,avif --bpp-grid 0.2,1 \\
        --image-size 256 --store s3://bucket/ade-store --engine ray --workers 64 --ray-address auto --json
    augcomp precompute --task seg --data-root ADE --split training --variants 4 --train-codecs jpeg2000,avif \\
        --train-bpp 0.1,2 --store s3://bucket/ade-store --engine ray --workers 64 --ray-address auto
    augcomp store verify s3://bucket/ade-store --json
    augcomp store info s3://bucket/ade-store

With ``--json`` each command ends with one JSON line (``precompute``: ``encoded``, ``reused``, ``seconds``, ...;
``store``: ``entries``, ``bad``, ``digest``). ``store verify`` exits with status 1 when any entry is bad.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from augcomp._errors import ArgumentError

__all__ = ["add_store_commands"]


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one comma-separated name")
    return names


def _grid(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated bitrates such as 0.2,1, got {text!r}") from None
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        raise argparse.ArgumentTypeError(f"bitrates must be positive and finite, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _recipe_options(args: argparse.Namespace) -> list[str]:
    # What decides a training set and its mix, passed on as a recipe takes it, so that the defaults are the recipe's.
    out: list[str] = []
    for option, value in (("--codecs", args.codecs), ("--train-codecs", args.train_codecs),
                          ("--train-bpp", args.train_bpp), ("--seed", args.seed), ("--image-size", args.image_size),
                          ("--train-size", args.train_size)):
        if value is not None:
            out += [option, ",".join(value) if isinstance(value, list) else str(value)]
    return out


def cmd_precompute(args: argparse.Namespace) -> int:
    """Fills the store with every missing entry of a sweep, or with K variants of every training image."""
    from augcomp.experiment.precompute import precompute, precompute_variants

    if args.variants is not None:
        if args.bpp_grid is not None:
            raise ArgumentError("--bpp-grid is for a sweep split; with --variants the targets are drawn from "
                                "--train-bpp")
        summary = precompute_variants(task=args.task, data_root=args.data_root, split=args.split or "train",
                                      variants=args.variants, store=args.store, options=_recipe_options(args),
                                      engine=args.engine, workers=args.workers, ray_address=args.ray_address,
                                      flush_every=args.flush_every, progress=not args.json)
        print(f"precompute: {summary['encoded']} encoded, {summary['reused']} reused"
              f"{', ' + str(summary['repaired']) + ' bad entries removed' if summary['repaired'] else ''}; "
              f"{summary['variants']} variants of {summary['images']} training images "
              f"({','.join(summary['codecs'])}, {summary['bpp'][0]:g}-{summary['bpp'][1]:g} bpp, seed "
              f"{summary['seed']}); {summary['entries']} entries in {args.store} ({summary['seconds']:.1f} s)")
        if args.json:
            print(json.dumps(summary))
        return 0
    for option, value in (("--codecs", args.codecs), ("--bpp-grid", args.bpp_grid)):
        if value is None:
            raise ArgumentError(f"{option} is required for a sweep split (or give --variants K for a training split)")
    for option in ("train_codecs", "train_bpp", "seed", "train_size"):
        if getattr(args, option) is not None:
            raise ArgumentError(f"--{option.replace('_', '-')} is for a training split with --variants K")
    summary = precompute(task=args.task, data_root=args.data_root, split=args.split or "val", codecs=args.codecs,
                         bpp_grid=args.bpp_grid, image_size=args.image_size, store=args.store, engine=args.engine,
                         workers=args.workers, ray_address=args.ray_address, flush_every=args.flush_every,
                         progress=not args.json)
    print(f"precompute: {summary['encoded']} encoded, {summary['reused']} reused"
          f"{', ' + str(summary['repaired']) + ' bad entries removed' if summary['repaired'] else ''}; "
          f"{summary['entries']} entries in {args.store} ({summary['images']} images, engine {args.engine}, "
          f"{args.workers} workers, {summary['seconds']:.1f} s)")
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    """``store verify`` re-hashes and decodes every entry; ``store info`` counts entries per codec and target."""
    from augcomp.store import Store

    store = Store(args.path)
    if args.action == "verify":
        report = store.verify(progress=not args.json)
        for record in report.bad[:50]:
            where = record["part"].rsplit("/", 1)[-1] + ("" if record["row"] is None else f" row {record['row']}")
            print(f"bad: {record['key'] or '(unknown keys)'} in {where}: {record['reason']}")
        if len(report.bad) > 50:
            print(f"... and {len(report.bad) - 50} more")
        state = "OK" if not report.bad else f"{len(report.bad)} BAD (the next precompute encodes them again)"
        print(f"verify {args.path}: {report.entries} good entries, {report.rows} rows read, {state}; "
              f"digest {report.digest}")
        summary: dict[str, Any] = {"entries": report.entries, "bad": len(report.bad), "digest": report.digest,
                                   "rows": report.rows, "bad_entries": report.bad}
        if args.json:
            print(json.dumps(summary))
        return 1 if report.bad else 0
    info = store.info()
    print(f"{args.path}: {info['entries']} entries in {info['parts']} part files, {info['store_bytes']} bytes")
    print(f"{'codec':<22}{'target':>10}{'entries':>9}{'coded bytes':>13}{'mean bpp':>10}")
    for g in info["groups"]:
        target = f"{g['target']:g}" + (" bpp" if g["target_kind"] == "bpp" else "")
        print(f"{g['codec']:<22}{target:>10}{g['entries']:>9}{g['bytes']:>13}{g['mean_bpp']:>10.4f}")
    print(f"digest {info['digest']}")
    if args.json:
        print(json.dumps({**info, "bad": 0}))
    return 0


def add_store_commands(sub: Any) -> None:
    """Adds ``precompute`` and ``store`` to the ``augcomp`` command's subparsers."""
    # Only the store (no pyarrow at import) is imported here: the command line must build on a core install.
    from augcomp.store import ENGINES

    p = sub.add_parser("precompute", help="fill a store of coded files with every entry of a sweep, or with K "
                       "coded variants of every training image (--variants)")
    p.add_argument("--task", required=True, help="cls, det or seg: whose preprocessing and dataset layout")
    p.add_argument("--data-root", default=None, help="the dataset (default: the recipe's synthetic scenes)")
    p.add_argument("--split", default=None, help="the split's name (default val, or train with --variants; ADE20K: "
                   "validation, training)")
    p.add_argument("--codecs", default=None, type=_names, help="comma-separated codec names (a sweep's; with "
                   "--variants, the mix when --train-codecs is not given, as in the recipes)")
    p.add_argument("--bpp-grid", default=None, type=_grid, help="comma-separated target bitrates (a sweep split)")
    p.add_argument("--image-size", type=_positive, default=None, help="the image side as the recipe takes it "
                   "(default: the task's)")
    p.add_argument("--variants", type=_positive, default=None, metavar="K",
                   help="a training split: code K variants of every training image, each at a (codec, target) "
                        "drawn from the finetuning mix, for a recipe's --train-store")
    p.add_argument("--train-codecs", default=None, type=_names,
                   help="with --variants: the finetuning mix (default: the recipe's, from --codecs)")
    p.add_argument("--train-bpp", default=None, help="with --variants: the target range 'lo,hi' or one value "
                   "(default: the recipe's finetuning range)")
    p.add_argument("--seed", type=int, default=None, help="with --variants: the recipe run's --seed (default 0)")
    p.add_argument("--train-size", type=_positive, default=None,
                   help="with --variants: the recipe run's --train-size (default: the recipe's)")
    p.add_argument("--store", required=True, help="the store: a folder or an fsspec URL (s3://, gs://, ...)")
    p.add_argument("--engine", choices=ENGINES, default="local", help="local process pool, or Ray Data")
    p.add_argument("--workers", type=_positive, default=1, help="processes (local) or Ray actors (default 1)")
    p.add_argument("--ray-address", default=None, help="a Ray cluster to join (default: start a local Ray)")
    p.add_argument("--flush-every", type=_positive, default=512,
                   help="entries per part file written (default 512): a killed run loses at most this many")
    p.add_argument("--json", action="store_true", help="end with one JSON line (encoded, reused, seconds, ...)")
    p.set_defaults(func=cmd_precompute)

    p = sub.add_parser("store", help="check a store (verify) or summarise it (info)")
    p.add_argument("action", choices=("verify", "info"), help="verify: re-hash and decode every entry; info: counts")
    p.add_argument("path", help="the store: a folder or an fsspec URL")
    p.add_argument("--json", action="store_true", help="end with one JSON line (entries, bad, digest)")
    p.set_defaults(func=cmd_store)
