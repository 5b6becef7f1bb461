"""Command-line options shared by the three recipes, built from the task's settings dataclass.

Every field of the task's :class:`~augcomp.tasks.settings.Settings` becomes an option whose help shows the value a
run uses: one value, or one for the synthetic scenes and one for ``--data-root`` where the presets differ. An option
left unset keeps its preset's value; ``--tiny`` swaps in :data:`~augcomp.tasks.settings.TINY` first.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import textwrap
from typing import Any

from augcomp._errors import AugcompError
from augcomp.experiment.options import Run, RunOptions
from augcomp.experiment.phases import PHASES, get_phase, stop_after_help, stop_points
from augcomp.tasks.settings import TINY

__all__ = ["TINY", "UsageError", "make_parser", "parse_args", "parse_bpp_range", "parse_grid"]

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
    if phase not in PHASES or (epoch and (not get_phase(phase).trains or not epoch.isdigit())):
        raise argparse.ArgumentTypeError(f"--stop-after takes {stop_points()}, got {text!r}")
    return text


def _shown(value: Any, none: str) -> str:
    if value is None:
        return none
    if isinstance(value, tuple):
        return ",".join(_shown(v, none) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and value.startswith("{"):
        return f"'{value}'"  # a JSON object reads as the shell argument it would be
    return str(value)


def _default_help(task: Any, f: dataclasses.Field) -> str:
    none = f.metadata.get("none", "none")
    synthetic, real = getattr(task.settings(True), f.name), getattr(task.settings(False), f.name)
    if synthetic == real:
        return f"default: {_shown(synthetic, none)}"
    return f"default: {_shown(synthetic, none)} (synthetic), {_shown(real, none)} (--data-root)"


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help lines at spaces only, so that ``--data-root`` and ``map_50`` stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)


class UsageError(SystemExit, AugcompError):
    """A mistake in the command line; its ``code`` is the one line to print, ``error: <what> (see --help)``.

    :func:`~augcomp.experiment.recipe.recipe_entry_point` prints it once and exits with status 2, as argparse does;
    left uncaught, Python prints it and exits with status 1. An :class:`~augcomp.AugcompError` like every error the
    recipes print as one line (``SystemExit`` first, so that ``code`` holds the line).
    """


class _Parser(argparse.ArgumentParser):
    """Reports a mistake in the command as one line, like every other expected failure of a recipe, instead of the
    usage block and the message."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"error: {' '.join(message.split())} (see --help)")


# Options whose text needs parsing beyond a plain type.
_PARSERS = {"bpp_grid": parse_grid, "train_bpp": parse_bpp_range}
_GROUPS = {"data": "data", "model": "clean model", "finetune": "finetuning on compressed images", "sweep": "sweep",
           "run": "run"}


def make_parser(task: Any, description: str) -> argparse.ArgumentParser:
    """The recipe's parser: one option per field of the task's settings, the options that control a run, then the
    task's own (``task.add_arguments``).

    Settings options default to ``None`` (not given); :func:`parse_args` fills them from the preset that fits the
    run, and their help shows those values.
    """
    p = _Parser(
        description=description,
        formatter_class=_HelpFormatter,
        epilog="Where two defaults are shown, the first is used on synthetic scenes (no --data-root) and the second "
        "on a real dataset. --tiny uses " + ", ".join(f"--{k.replace('_', '-')} {_shown(v, 'none')}"
                                                      for k, v in TINY.items()) + ". --dry-run prints the plan.",
    )
    groups = {key: p.add_argument_group(title) for key, title in _GROUPS.items()}
    groups["data"].add_argument("--data-root", default=None,
                                help="dataset root in its standard layout; without it, synthetic scenes are generated")
    for f in dataclasses.fields(task.settings(True)):
        meta = f.metadata
        kind = _PARSERS.get(f.name) or meta.get("type") or (type(f.default) if f.default is not None else str)
        help_text = f"{meta['help']}; {_default_help(task, f)}".replace("%", "%%")
        groups[meta.get("group", "run")].add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=None, choices=meta.get("choices"),
            metavar=meta.get("metavar"), help=help_text)

    m = groups["model"]
    m.add_argument("--checkpoint", default=None, help="state dict of the clean model (skips clean training)")
    m.add_argument("--pretrained", action="store_true",
                   help="start clean training from pretrained backbone weights (downloaded by name)")

    r = groups["run"]
    r.add_argument("--output-dir", default=None,
                   help=f"where results and checkpoints go (default: results/{task.name}); nothing is written "
                        "outside it")
    r.add_argument("--store", default=None, metavar="PATH",
                   help="a store of coded files (folder or fsspec URL, e.g. s3://bucket/store): the sweeps decode the "
                        "entries found there and add those they encode (see 'augcomp precompute')")
    r.add_argument("--train-store", default=None, metavar="PATH",
                   help="finetune from a store holding K coded variants per training image, filled by 'augcomp "
                        "precompute --split <train split> --variants K' with this run's mix, bpp range and seed (K is "
                        "read from the store): each sample and epoch takes one variant, decoded where it is loaded, "
                        "or stays clean with --clean-share; nothing is encoded, and a missing variant stops the run")
    r.add_argument("--resume", action="store_true", help="continue the run in --output-dir, skipping finished work")
    r.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --output-dir that holds an earlier one, moving the earlier run's "
                        "files into a previous-<time> folder inside it (without this, such a run is refused)")
    r.add_argument("--skip-bad-files", action="store_true",
                   help="leave out samples whose file is unreadable, truncated or not an image, or whose mask differs "
                        "in size from its image (found by a header scan before the run; results.json lists them); "
                        "without this, such a file stops the run naming it")
    r.add_argument("--stop-after", type=_stop_after, default=None, help=stop_after_help())
    r.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                   help="autocast precision (default: accelerate's configuration)")
    r.add_argument("--cpu", action="store_true", help="run on the CPU even if an accelerator is present")
    r.add_argument("--log-with", default=None, help="trackers for Accelerator(log_with=...), e.g. tensorboard, wandb")
    r.add_argument("--tiny", action="store_true",
                   help="a seconds-long run on tiny synthetic data (tests, smoke); the values are listed below")
    r.add_argument("--dry-run", action="store_true", help="print the plan (data, steps, grid, codecs) and exit")
    task.add_arguments(p)
    return p


def parse_args(parser: argparse.ArgumentParser, task: Any, argv: list[str] | None = None) -> Run:
    """Parses ``argv`` once into the run's frozen settings (the task's preset, synthetic or real data and
    ``--tiny``, with the options given on top) and its options.

    Returns:
        ``Run(settings, options)``.
    """
    args = parser.parse_args(argv)
    synthetic = args.data_root is None
    if args.tiny and not synthetic:
        parser.error("--tiny runs on synthetic scenes; drop --data-root")
    if args.output_dir is None:
        args.output_dir = f"results/{task.name}"
    elif not args.output_dir.strip():
        # An empty path would mean the current folder, and the run would write (and lock) there.
        parser.error(f"--output-dir is empty; give a folder (default: results/{task.name})")
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in --output-dir and --overwrite moves it aside; give one of them")
    given = vars(args)
    try:
        settings = task.settings(synthetic, tiny=args.tiny).merged(**given)
    except ValueError as e:
        parser.error(str(e))
    names = {f.name for f in dataclasses.fields(RunOptions)} - {"task", "extra"}
    known = names | set(settings.as_dict())
    extra = {k: v for k, v in given.items() if k not in known}
    options = RunOptions(task=task.name, **{k: given[k] for k in names}, extra=extra)
    return Run(settings, options)
