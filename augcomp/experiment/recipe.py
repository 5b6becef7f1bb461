"""What a recipe script does: parse, build the accelerator, data and codecs, claim the output folder, then print
the plan or run the protocol; expected failures end as one line (``error: ...``) instead of a traceback."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from augcomp.experiment.codecs import resolve_codecs
from augcomp.experiment.errors import RecipeError, one_line
from augcomp.experiment.outdir import claim_output_dir
from augcomp.experiment.protocol import Protocol
from augcomp.tasks.base import DataBundle, Task

__all__ = ["main", "make_accelerator", "plan", "recipe_entry_point", "run_recipe"]

INTERRUPTED = "interrupted; rerun with --resume to continue"


def make_accelerator(args: argparse.Namespace) -> Any:
    """An ``Accelerator`` configured from the common options (precision, CPU, accumulation, trackers)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    kwargs: dict[str, Any] = {
        "cpu": args.cpu,
        "gradient_accumulation_steps": args.grad_accum,
        "project_config": ProjectConfiguration(project_dir=args.output_dir,
                                               logging_dir=str(Path(args.output_dir) / "logs")),
    }
    if args.mixed_precision:
        kwargs["mixed_precision"] = args.mixed_precision
    if args.log_with:
        kwargs["log_with"] = [s.strip() for s in args.log_with.split(",") if s.strip()]
    _check_cpu_launch()
    return Accelerator(**kwargs)


def _check_cpu_launch() -> None:
    # `accelerate launch --cpu --num_processes N` (N > 1) without mpirun starts one plain process with a rendezvous
    # address but no world: the run would silently be a single process.
    env = os.environ
    single = not any(k in env for k in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_RANK"))
    if env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env and single:
        raise RecipeError(
            "accelerate launch --cpu with --num_processes > 1 starts a single process here (accelerate starts several "
            "CPU processes only through mpirun); for N CPU processes run `accelerate launch --multi_gpu "
            "--num_processes N recipes/<task>.py --cpu ...` (torchrun; the processes talk through gloo)"
        )


def plan(task: Task, data: DataBundle, args: argparse.Namespace, codecs: list[str], skipped: dict[str, str],
         num_processes: int = 1, train_codecs: list[str] | None = None) -> str:
    """The plan of a run as text (printed by ``--dry-run``): data, model, steps, the finetuning mix, bitrates,
    codecs, outputs.

    Args:
        task: the task.
        data: its datasets.
        args: parsed options.
        codecs: codecs of the sweep.
        skipped: codecs left out of ``available``, with the reason.
        num_processes: processes of the run.
        train_codecs: codecs of the finetuning mix (default: ``codecs``).
    """
    train_codecs = train_codecs or codecs
    world = num_processes * args.batch_size * args.grad_accum
    steps = len(data.train) // max(1, num_processes * args.batch_size)
    opt_steps = math.ceil(steps / args.grad_accum)
    if args.checkpoint:
        clean = f"load --checkpoint {args.checkpoint}"
    elif args.clean_epochs > 0:
        init = "pretrained backbone" if args.pretrained else "random init"
        clean = f"train {args.clean_epochs} epochs on clean images ({init}), lr {args.clean_lr:g}"
    elif task.has_pretrained(args, data):
        clean = f"pretrained weights of {args.model!r}"
    else:
        clean = "NONE: give --checkpoint or --clean-epochs (no complete pretrained model for this data)"
    bpp = args.train_bpp
    bpp_txt = f"{bpp:g} (fixed)" if isinstance(bpp, float) else f"{bpp[0]:g}-{bpp[1]:g} (log-uniform per sample)"
    lines = [
        f"task            {task.title} ({task.name}), headline metric {task.headline(args)}",
        f"data            {data.description}",
        f"                train {len(data.train)} images, val {len(data.val)} images, {data.num_classes} classes",
        f"model           {args.model} {args.model_kwargs or ''}".rstrip(),
        f"clean model     {clean}",
        f"finetuning      {args.epochs} epochs x {opt_steps} optimizer steps (global batch {world}), "
        f"lr {args.lr:g}, one model for every codec and bitrate",
        f"finetune mix    per image: a codec drawn from {', '.join(train_codecs)}; bpp {bpp_txt}; "
        f"clean share {args.clean_share:g} ({100 * args.clean_share:.0f}% of images left uncompressed)",
        f"sweep           clean + {len(codecs)} codec(s) x {len(args.bpp_grid)} bitrates, twice (before/after), "
        "and codec against codec at each bitrate (matched bpp)",
        f"bpp grid        {', '.join(f'{b:g}' for b in args.bpp_grid)}",
        f"codecs          {', '.join(codecs)}",
    ]
    for name, reason in skipped.items():
        lines.append(f"  skipped       {name}: {reason.splitlines()[0][:140]}")
    lines += [
        f"processes       {num_processes}, mixed precision {args.mixed_precision or 'accelerate default'}",
        f"output          {args.output_dir} (results.json, results.md, robustness.png, matched_bpp.png, "
        "state.json, ckpt/)",
    ]
    return "\n".join(lines)


def _check_data_root(args: argparse.Namespace) -> None:
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise RecipeError(f"--data-root {args.data_root} is not a folder; give the root of the dataset, or leave "
                          "--data-root out to run on synthetic scenes")


def _build_data(task: Task, args: argparse.Namespace) -> DataBundle:
    if args.data_root is None:
        return task.build_data(args)
    try:
        return task.build_data(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise RecipeError(f"--data-root {args.data_root}: {e}") from None


def _resolve_codecs(args: argparse.Namespace) -> tuple[list[str], list[str], dict[str, str]]:
    # The sweep's codecs, the finetuning mix (the sweep's unless --train-codecs), and those 'available' left out.
    codecs, skipped = resolve_codecs(args.codecs)
    if not codecs:
        raise RecipeError(f"--codecs {args.codecs!r} leaves no usable codec")
    if args.train_codecs is None:
        return codecs, codecs, skipped
    train_codecs, train_skipped = resolve_codecs(args.train_codecs, option="--train-codecs")
    if not train_codecs:
        raise RecipeError(f"--train-codecs {args.train_codecs!r} leaves no usable codec")
    return codecs, train_codecs, {**skipped, **train_skipped}


def main(task: Task, args: argparse.Namespace) -> dict[str, Any] | None:
    """Everything a recipe does after parsing: codecs, accelerator, output folder, data, then the plan or the
    protocol.

    Returns:
        The results (as written to ``results.json``), or None for ``--dry-run`` and ``--stop-after``.

    Raises:
        RecipeError: a mistake in the options or the environment (the message says what to do).
    """
    from accelerate.utils import set_seed

    _check_data_root(args)
    # Before the accelerator, the data and the output folder: a misspelt or unusable codec fails at once.
    codecs, train_codecs, skipped = _resolve_codecs(args)
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    lock = None
    if not args.dry_run and accelerator.is_main_process:
        # Before anything is written: one run per folder, and an earlier run is never silently replaced.
        lock, note = claim_output_dir(args.output_dir, resume=args.resume, overwrite=args.overwrite)
        if note:
            accelerator.print(note)
    try:
        data = _build_data(task, args)
        if args.dry_run:
            accelerator.print(plan(task, data, args, codecs, skipped, accelerator.num_processes, train_codecs))
            return None
        for name, reason in skipped.items():
            accelerator.print(f"codec {name} skipped: {reason.splitlines()[0][:160]}")
        start = time.time()
        results = Protocol(accelerator, task, data, args, codecs, train_codecs).run()
        accelerator.print(f"total {time.time() - start:.0f} s")
        return results
    finally:
        if lock is not None:
            lock.release()


def run_recipe(task: Task, description: str, argv: list[str] | None = None) -> dict[str, Any] | None:
    """Everything a recipe script does: parse ``argv`` (the command line by default) for ``task`` and run the
    protocol. Returns the results, or None for ``--dry-run``."""
    from augcomp.experiment.args import make_parser, parse_args

    parser = make_parser(task, description=description)
    return main(task, parse_args(parser, task, argv))


def recipe_entry_point(task: Task, description: str, argv: list[str] | None = None) -> None:
    """``run_recipe`` for ``if __name__ == "__main__"``: expected failures (mistakes in the command, a missing
    dataset, a full or read-only disk, offline without weights) end with a one-line ``error: ...`` and exit status
    1, Ctrl-C with a hint to resume and status 130; anything else keeps its traceback."""
    try:
        run_recipe(task, description, argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        message = one_line(e)
        if message is None:
            raise
        sys.exit(f"error: {message}")
