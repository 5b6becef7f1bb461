"""Command-line options shared by the three recipes."""

from __future__ import annotations

import argparse
import math
from typing import Any

from augcomp.experiment.io import PHASES

__all__ = ["make_parser", "parse_args", "parse_bpp_range", "parse_grid", "TINY"]

DEFAULT_GRID = "0.1,0.2,0.5,1.0,2.0"

# --tiny: a run of a few seconds per phase, for tests and smoke checks (explicit options still win).
TINY: dict[str, Any] = {
    "train_size": 48, "val_size": 24, "clean_epochs": 1, "epochs": 1, "batch_size": 16, "eval_batch_size": 24,
    "bpp_grid": "0.2,1.0", "image_size": 48, "num_workers": 0,
}

# Values every task shares, used when neither the command line nor the task sets them.
COMMON: dict[str, Any] = {
    "train_split": "train", "val_split": "val", "clip_grad_norm": None, "head_channels": None, "headline": None,
    "fpn_channels": None, "num_workers": 0,
}

SPLITS = {"cls": ("train", "val"), "det": ("train2017", "val2017"), "seg": ("training", "validation")}


def parse_grid(text: str) -> list[float]:
    """``"0.1,0.2,0.5"`` -> ``[0.1, 0.2, 0.5]`` (positive, sorted, unique)."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"bitrates must be positive numbers, got {text!r}")
    return values


def parse_bpp_range(text: str) -> float | tuple[float, float]:
    """``"0.1,2.0"`` -> ``(0.1, 2.0)`` (a range, sampled log-uniformly per sample); ``"0.2"`` -> ``0.2`` (fixed)."""
    parts = [p for p in text.split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected 'lo,hi' or one number, got {text!r}") from e
    if len(values) not in (1, 2) or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"expected 'lo,hi' or one positive number, got {text!r}")
    if len(values) == 1:
        return values[0]
    lo, hi = values
    if lo > hi:
        raise argparse.ArgumentTypeError(f"range must have lo <= hi, got {text!r}")
    return (lo, hi)


def _stop_after(text: str) -> str:
    phase, _, epoch = text.partition(":")
    if phase not in PHASES or (epoch and (phase not in ("clean", "finetune") or not epoch.isdigit())):
        raise argparse.ArgumentTypeError(
            f"--stop-after takes a phase ({', '.join(PHASES)}) or 'clean:N' / 'finetune:N' (after epoch N), "
            f"got {text!r}"
        )
    return text


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except ``None``: those options take task- and data-dependent values (see ``--dry-run``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        if isinstance(action.default, tuple):
            return f"{action.help} (default: {','.join(f'{v:g}' for v in action.default)})"
        return super()._get_help_string(action)


def make_parser(task: Any, description: str) -> argparse.ArgumentParser:
    """The recipe's parser: the protocol's options, then the task's own (``task.add_arguments``).

    Options left at ``None`` are filled by :func:`parse_args` from the task's defaults, which differ between the
    synthetic scenes and a real dataset.
    """
    p = argparse.ArgumentParser(
        description=description,
        formatter_class=_HelpFormatter,
        epilog="Options without a default shown take values that depend on the task and on whether --data-root is "
        "given (synthetic scenes or a real dataset); --dry-run prints them.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data-root", default=None,
                   help="dataset root in its standard layout; without it, synthetic scenes are generated")
    d.add_argument("--train-split", default=None, help="training split name (default: the dataset's usual one)")
    d.add_argument("--val-split", default=None, help="validation split name")
    d.add_argument("--train-size", type=int, default=None,
                   help="synthetic: number of training scenes; real data: a fixed random subset of this size")
    d.add_argument("--val-size", type=int, default=None, help="likewise for the validation set")
    d.add_argument("--image-size", type=int, default=None, help="training and evaluation image side")
    d.add_argument("--num-workers", type=int, default=None, help="DataLoader workers per process")

    m = p.add_argument_group("clean model")
    m.add_argument("--model", default=None, help="timm name (cls, seg backbone, det backbone) or torchvision detector")
    m.add_argument("--model-kwargs", default=None, help="JSON object of extra keyword arguments for the model builder")
    m.add_argument("--checkpoint", default=None, help="state dict of the clean model (skips clean training)")
    m.add_argument("--pretrained", action="store_true",
                   help="start clean training from pretrained backbone weights (downloaded by name)")
    m.add_argument("--clean-epochs", type=int, default=None,
                   help="train the clean model on clean data for this many epochs (0: use --checkpoint or pretrained "
                        "weights by --model name)")
    m.add_argument("--clean-lr", type=float, default=None, help="peak learning rate of clean training")

    f = p.add_argument_group("finetuning on compressed images")
    f.add_argument("--epochs", type=int, default=None, help="finetuning epochs")
    f.add_argument("--lr", type=float, default=None, help="peak learning rate of finetuning")
    f.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (both training phases)")
    f.add_argument("--batch-size", type=int, default=None, help="training batch size per process")
    f.add_argument("--eval-batch-size", type=int, default=None, help="evaluation batch size per process")
    f.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    f.add_argument("--clip-grad-norm", type=float, default=None, help="clip gradients to this norm")
    f.add_argument("--warmup", type=float, default=0.05, help="fraction of steps with linear warm-up")
    f.add_argument("--train-bpp", type=parse_bpp_range, default=parse_bpp_range("0.1,2.0"),
                   help="bpp of training images: 'lo,hi' drawn log-uniformly per sample, or one fixed number")
    f.add_argument("--compress-p", type=float, default=1.0, help="probability that a training image is compressed")

    s = p.add_argument_group("sweep")
    s.add_argument("--codecs", default="jpeg",
                   help="comma-separated codec names, or 'available' (JPEG and every neural codec whose weights are "
                        "present, the one shipped with augcomp included)")
    s.add_argument("--bpp-grid", default=None, help=f"target bitrates of the sweep (default {DEFAULT_GRID})")
    s.add_argument("--min-drop", type=float, default=0.5,
                   help="recovery is reported only where clean minus before exceeds this many metric points")
    s.add_argument("--cache-val-mb", type=float, default=1024,
                   help="keep compressed validation batches in memory up to this size, so the sweep after "
                        "finetuning reuses them (0 disables)")

    r = p.add_argument_group("run")
    r.add_argument("--output-dir", default=None, help="where results and checkpoints go (default results/<task>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --output-dir, skipping finished work")
    r.add_argument("--stop-after", type=_stop_after, default=None,
                   help="stop after a phase (clean, sweep_before, finetune, sweep_after) or 'clean:N'/'finetune:N'")
    r.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                   help="autocast precision (default: accelerate's configuration)")
    r.add_argument("--cpu", action="store_true", help="run on the CPU even if an accelerator is present")
    r.add_argument("--log-with", default=None, help="trackers for Accelerator(log_with=...), e.g. tensorboard, wandb")
    r.add_argument("--seed", type=int, default=0, help="seed of initialization, shuffling, synthetic scenes, draws")
    r.add_argument("--tiny", action="store_true", help="a seconds-long run on tiny synthetic data (tests, smoke)")
    r.add_argument("--dry-run", action="store_true", help="print the plan (data, steps, grid, codecs) and exit")
    task.add_arguments(p)
    return p


def parse_args(parser: argparse.ArgumentParser, task: Any, argv: list[str] | None = None) -> argparse.Namespace:
    """Parses ``argv`` and fills unset options: ``--tiny`` values, then the task's defaults, then common ones."""
    args = parser.parse_args(argv)
    synthetic = args.data_root is None
    if args.tiny and not synthetic:
        parser.error("--tiny runs on synthetic scenes; drop --data-root")
    fills: list[dict[str, Any]] = []
    if args.tiny:
        fills.append(TINY)
    fills.append(task.defaults(synthetic))
    train_split, val_split = SPLITS.get(task.name, ("train", "val"))
    fills.append({**COMMON, "train_split": train_split, "val_split": val_split, "bpp_grid": DEFAULT_GRID})
    for values in fills:
        for key, value in values.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    args.task = task.name
    try:
        args.bpp_grid = parse_grid(args.bpp_grid) if isinstance(args.bpp_grid, str) else list(args.bpp_grid)
    except argparse.ArgumentTypeError as e:
        parser.error(f"--bpp-grid: {e}")
    if args.output_dir is None:
        args.output_dir = f"results/{task.name}"
    for name in ("epochs", "clean_epochs"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.grad_accum < 1:
        parser.error("--grad-accum must be >= 1")
    if not 0.0 <= args.compress_p <= 1.0:
        parser.error("--compress-p must be in [0, 1]")
    return args
