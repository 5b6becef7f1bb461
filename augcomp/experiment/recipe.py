"""What a recipe script does: parse, build the accelerator, data and codecs, claim the output folder, then print
the plan or run the protocol; expected failures end as one line (``error: ...``) instead of a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from augcomp._errors import AugcompError
from augcomp.experiment.args import UsageError
from augcomp.experiment.codecs import resolve_codecs
from augcomp.experiment.errors import RecipeError, bad_file_message, one_line
from augcomp.experiment.outdir import claim_output_dir
from augcomp.experiment.protocol import Protocol
from augcomp.experiment.report import results_table
from augcomp.experiment.runfiles import RUN_FILE_TABLE
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
            "CPU processes only through mpirun); for N CPU processes run `torchrun --nproc_per_node N "
            "recipes/<task>.py --cpu ...` or `accelerate launch --multi_gpu --num_processes N recipes/<task>.py "
            "--cpu ...` (which runs torchrun; the processes talk through gloo)"
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
        lines.append(wrapped(f"  skipped       {name}: ", reason, indent=16))
    if data.bad_files:
        lines.append(f"bad files       {len(data.bad_files)} left out (--skip-bad-files), listed in results.json")
    store = getattr(args, "store", None)
    coded = (f"store {store}: entries found are decoded, the rest encoded and added" if store
             else "encoded in the run, kept in memory up to --cache-val-mb (no --store)")
    lines.append(f"coded files     {coded}")
    if getattr(args, "train_store", None):
        from augcomp.data.train_store import describe_train_store

        lines.append(wrapped("train store     ", describe_train_store(args.train_store, train_codecs, args.train_bpp,
                                                                      args.seed, args.clean_share), indent=16))
    outputs = ", ".join(f.name for f in RUN_FILE_TABLE)
    lines += [
        f"processes       {num_processes}, mixed precision {args.mixed_precision or 'accelerate default'}",
        wrapped(f"output          {args.output_dir} ", f"({outputs})", indent=16),
    ]
    return "\n".join(lines)


def wrapped(head: str, text: str, indent: int = 4, width: int = 118) -> str:
    """``head`` followed by the whole of ``text`` on one logical item, wrapped at spaces (never mid-word) to
    ``width`` with continuation lines indented by ``indent``."""
    return textwrap.fill(" ".join(text.split()), width, initial_indent=head, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)


def _check_data_root(args: argparse.Namespace) -> None:
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise RecipeError(f"--data-root {args.data_root} is not a folder; give the root of the dataset, or leave "
                          "--data-root out to run on synthetic scenes")


def _build_data(task: Task, args: argparse.Namespace, say: Any = print) -> DataBundle:
    if args.data_root is None:
        return task.build_data(args)
    say(f"data: reading {args.data_root}")
    try:
        data = task.build_data(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise RecipeError(f"--data-root {args.data_root}: {e}") from None
    return _check_files(data, args, say)


def _check_files(data: DataBundle, args: argparse.Namespace, say: Any = print) -> DataBundle:
    # Every file the run will read, by its header, before any training or metric: a bad file in the validation
    # split would otherwise surface mid-sweep, or (a mask of another size) never.
    from augcomp.data import BadFileError, check_files

    say(f"data: checking the files of {len(data.train)} training and {len(data.val)} validation samples")
    splits, bad = {}, []
    for split, dataset in (("train", data.train), ("val", data.val)):
        try:
            splits[split], found = check_files(dataset, skip=args.skip_bad_files)
        except BadFileError as e:
            raise RecipeError(
                f"{bad_file_message(e)}; remove or replace it, or give --skip-bad-files to leave such files out "
                "(results.json then lists them)"
            ) from None
        bad += [{"split": split, **f} for f in found]
    for f in bad:
        say(f"data: left out ({f['split']}) {f['path']}: {f['fault']}")
    return dataclasses.replace(data, train=splits["train"], val=splits["val"], bad_files=bad)


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
    _say(f"codecs: checking {args.codecs}" + (f" and {args.train_codecs}" if args.train_codecs else ""))
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
        data = _build_data(task, args, say=accelerator.print)
        text = plan(task, data, args, codecs, skipped, accelerator.num_processes, train_codecs)
        if args.dry_run:
            accelerator.print(text)
            return None
        # What the run will do and where it writes, before it starts: a log then says what it belongs to.
        accelerator.print(f"plan\n{textwrap.indent(text, '  ')}")
        start = time.time()
        results = Protocol(accelerator, task, data, args, codecs, train_codecs).run()
        if results is not None:
            accelerator.print("\n".join(["", *results_table(results), ""]))
        accelerator.print(f"total {time.time() - start:.0f} s; results in {args.output_dir}")
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
    dataset or a bad file in it, a full or read-only disk, offline without weights) end with a one-line
    ``error: ...`` and exit status 1 (2 for a mistake in the command line, as argparse's), Ctrl-C with a hint to
    resume and status 130; anything else keeps its traceback.

    Expected failures are known by their type: an :class:`~augcomp.AugcompError`, or an ``OSError`` of a full or
    unwritable disk (see :func:`~augcomp.experiment.errors.one_line`).

    The line is printed once, by the main process, also under ``accelerate launch`` (see :func:`_fail`).
    """
    try:
        run_recipe(task, description, argv)
    except KeyboardInterrupt:
        # The launcher, if any, got the Ctrl-C too and ends on its own.
        if _rank() == 0:
            print(INTERRUPTED, file=sys.stderr, flush=True)
        sys.exit(130)
    except UsageError as e:
        _fail(str(e.code), status=2)
    except (AugcompError, OSError) as e:
        message = one_line(e)
        if message is None:
            raise
        _fail(f"error: {message}")


# ------------------------------------------------------------------------------------------ one line, once

# How long a process other than the main one waits, after an expected failure, to be stopped: the main process
# usually fails the same way and stops the launcher, which ends every process. A failure of this process alone
# (a bad file in its shard) is reported by it after this wait.
PEER_WAIT_S = 10.0
# How long the main process waits for the launcher to stop it before printing anyway.
LAUNCHER_WAIT_S = 5.0


def _say(text: str) -> None:
    # Before the accelerator exists: only the main process speaks.
    if _rank() == 0:
        print(text, flush=True)


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return default


def _rank() -> int:
    """This process's global rank as torchrun or MPI set it (0 when not launched as one of several)."""
    return _env_int(("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"), 0)


def _world_size() -> int:
    return _env_int(("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"), 1)


def _accelerate_launcher() -> int | None:
    """The pid of the ``accelerate launch`` process that started this one, or None.

    Its simple launcher and its torchrun path both start the script as their own child, and both set
    ``ACCELERATE_MIXED_PRECISION``; the parent's command line tells it apart from a shell or plain torchrun.
    """
    if "ACCELERATE_MIXED_PRECISION" not in os.environ:
        return None
    ppid = os.getppid()
    try:
        argv = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")[:4]
    except OSError:
        return None
    words = [os.path.basename(a.decode("utf-8", "replace")) for a in argv]
    if ("accelerate" in words and "launch" in words) or "accelerate-launch" in words \
            or "accelerate.commands.launch" in words:
        return ppid
    return None


def _catch_sigterm() -> list[int]:
    """From now on a SIGTERM no longer ends this process; it is counted in the returned list.

    A handler, not a blocked signal: the signal is sent to the process, and any thread that does not block it (torch
    and the codecs run thread pools) would take it and end the process.
    """
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    return received


def _wait_for(received: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(received)


def _fail(line: str, status: int = 1) -> None:
    """Ends the process after an expected failure: ``line`` printed once, then exit ``status``.

    Under ``accelerate launch`` a child's non-zero exit makes the launcher raise, printing the child's error again
    inside a traceback of its own. A launcher that is asked to stop (SIGTERM) instead stops its processes and exits
    with status 143 and no traceback. So the main process stops its launcher, waits until the launcher stops it in
    turn (a simple launcher then relays the child's output in a thread that is already running, so the line cannot
    be lost), and only then prints the line. Other processes of a distributed run print nothing if they are stopped
    within :data:`PEER_WAIT_S`; one that is not failed alone and reports itself.
    """
    launcher = _accelerate_launcher()
    distributed = _world_size() > 1
    # Caught before anyone is asked to stop: the answer, a SIGTERM, must not end this process before the line.
    received = _catch_sigterm() if launcher is not None or distributed else []
    if _rank() != 0 and distributed and _wait_for(received, PEER_WAIT_S):
        raise SystemExit(status)
    if launcher is not None:
        os.kill(launcher, signal.SIGTERM)
        _wait_for(received, LAUNCHER_WAIT_S)
    elif not distributed and status == 1:
        raise SystemExit(line)  # printed by Python, once
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(status)
