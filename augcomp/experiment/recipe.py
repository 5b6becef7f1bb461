"""What a recipe script does: parse, build the accelerator, data and codecs, claim the output folder, then print
the plan or run the protocol; expected failures end as one line (``error: ...``) instead of a traceback."""

from __future__ import annotations

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
from augcomp.experiment.options import Run, RunOptions
from augcomp.experiment.outdir import claim_output_dir
from augcomp.experiment.protocol import Protocol
from augcomp.experiment.report import results_table
from augcomp.experiment.runfiles import LOGS_DIR, RUN_FILE_TABLE
from augcomp.tasks.base import DataBundle, Task
from augcomp.tasks.settings import Settings

__all__ = ["main", "make_accelerator", "plan", "recipe_entry_point", "run_recipe"]

INTERRUPTED = "interrupted; rerun with --resume to continue"


def make_accelerator(settings: Settings, options: RunOptions) -> Any:
    """An ``Accelerator`` configured from the run (precision, CPU, accumulation, trackers)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    kwargs: dict[str, Any] = {
        "cpu": options.cpu,
        "gradient_accumulation_steps": settings.grad_accum,
        "project_config": ProjectConfiguration(project_dir=options.output_dir,
                                               logging_dir=str(Path(options.output_dir) / LOGS_DIR)),
    }
    if options.mixed_precision:
        kwargs["mixed_precision"] = options.mixed_precision
    if options.log_with:
        kwargs["log_with"] = [s.strip() for s in options.log_with.split(",") if s.strip()]
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


def plan(task: Task, data: DataBundle, run: Run, codecs: list[str], skipped: dict[str, str],
         num_processes: int = 1, train_codecs: list[str] | None = None) -> str:
    """The plan of a run as text (printed by ``--dry-run``): data, model, steps, the finetuning mix, bitrates,
    codecs, outputs.

    Args:
        task: the task.
        data: its datasets.
        run: the run's settings and options.
        codecs: codecs of the sweep.
        skipped: codecs left out of ``available``, with the reason.
        num_processes: processes of the run.
        train_codecs: codecs of the finetuning mix (default: ``codecs``).
    """
    settings, options = run
    train_codecs = train_codecs or codecs
    world = num_processes * settings.batch_size * settings.grad_accum
    steps = len(data.train) // max(1, num_processes * settings.batch_size)
    opt_steps = math.ceil(steps / settings.grad_accum)
    if options.checkpoint:
        clean = f"load --checkpoint {options.checkpoint}"
    elif settings.clean_epochs > 0:
        init = "pretrained backbone" if options.pretrained else "random init"
        clean = f"train {settings.clean_epochs} epochs on clean images ({init}), lr {settings.clean_lr:g}"
    elif task.has_pretrained(settings, data):
        clean = f"pretrained weights of {settings.model!r}"
    else:
        clean = "NONE: give --checkpoint or --clean-epochs (no complete pretrained model for this data)"
    bpp = settings.train_bpp
    bpp_txt = f"{bpp:g} (fixed)" if isinstance(bpp, float) else f"{bpp[0]:g}-{bpp[1]:g} (log-uniform per sample)"
    lines = [
        f"task            {task.title} ({task.name}), headline metric {task.headline(settings)}",
        f"data            {data.description}",
        f"                train {len(data.train)} images, val {len(data.val)} images, {data.num_classes} classes",
        f"model           {settings.model} {settings.model_kwargs or ''}".rstrip(),
        f"clean model     {clean}",
        f"finetuning      {settings.epochs} epochs x {opt_steps} optimizer steps (global batch {world}), "
        f"lr {settings.lr:g}, one model for every codec and bitrate",
        f"finetune mix    per image: a codec drawn from {', '.join(train_codecs)}; bpp {bpp_txt}; "
        f"clean share {settings.clean_share:g} ({100 * settings.clean_share:.0f}% of images left uncompressed)",
        f"sweep           clean + {len(codecs)} codec(s) x {len(settings.bpp_grid)} bitrates, twice (before/after), "
        "and codec against codec at each bitrate (matched bpp)",
        f"bpp grid        {', '.join(f'{b:g}' for b in settings.bpp_grid)}",
        f"codecs          {', '.join(codecs)}",
    ]
    for name, reason in skipped.items():
        lines.append(wrapped(f"  skipped       {name}: ", reason, indent=16))
    if data.bad_files:
        lines.append(f"bad files       {len(data.bad_files)} left out (--skip-bad-files), listed in results.json")
    store = options.store
    coded = (f"store {store}: entries found are decoded, the rest encoded and added" if store
             else "encoded in the run, kept in memory up to --cache-val-mb (no --store)")
    lines.append(f"coded files     {coded}")
    if options.train_store:
        from augcomp.data.train_store import describe_train_store

        described = describe_train_store(options.train_store, train_codecs, settings.train_bpp, settings.seed,
                                         settings.clean_share)
        lines.append(wrapped("train store     ", described, indent=16))
    outputs = ", ".join(f.name for f in RUN_FILE_TABLE)
    lines += [
        f"processes       {num_processes}, mixed precision {options.mixed_precision or 'accelerate default'}",
        wrapped(f"output          {options.output_dir} ", f"({outputs})", indent=16),
    ]
    return "\n".join(lines)


def wrapped(head: str, text: str, indent: int = 4, width: int = 118) -> str:
    """``head`` followed by the whole of ``text`` on one logical item, wrapped at spaces (never mid-word) to
    ``width`` with continuation lines indented by ``indent``."""
    return textwrap.fill(" ".join(text.split()), width, initial_indent=head, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)


def _check_data_root(data_root: str | None) -> None:
    if data_root is not None and not Path(data_root).is_dir():
        raise RecipeError(f"--data-root {data_root} is not a folder; give the root of the dataset, or leave "
                          "--data-root out to run on synthetic scenes")


def _build_data(task: Task, run: Run, say: Any = print) -> DataBundle:
    settings, options = run
    if options.data_root is None:
        return task.build_data(settings, None)
    say(f"data: reading {options.data_root}")
    try:
        data = task.build_data(settings, options.data_root)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise RecipeError(f"--data-root {options.data_root}: {e}") from None
    return _check_files(data, options.skip_bad_files, say)


def _check_files(data: DataBundle, skip_bad_files: bool, say: Any = print) -> DataBundle:
    # Every file the run will read, by its header, before any training or metric: a bad file in the validation
    # split would otherwise surface mid-sweep, or (a mask of another size) never.
    from augcomp.data import BadFileError, check_files

    say(f"data: checking the files of {len(data.train)} training and {len(data.val)} validation samples")
    splits, bad = {}, []
    for split, dataset in (("train", data.train), ("val", data.val)):
        try:
            splits[split], found = check_files(dataset, skip=skip_bad_files)
        except BadFileError as e:
            raise RecipeError(
                f"{bad_file_message(e)}; remove or replace it, or give --skip-bad-files to leave such files out "
                "(results.json then lists them)"
            ) from None
        bad += [{"split": split, **f} for f in found]
    for f in bad:
        say(f"data: left out ({f['split']}) {f['path']}: {f['fault']}")
    return dataclasses.replace(data, train=splits["train"], val=splits["val"], bad_files=bad)


def _resolve_codecs(settings: Settings) -> tuple[list[str], list[str], dict[str, str]]:
    # The sweep's codecs, the finetuning mix (the sweep's unless --train-codecs), and those 'available' left out.
    codecs, skipped = resolve_codecs(settings.codecs)
    if not codecs:
        raise RecipeError(f"--codecs {settings.codecs!r} leaves no usable codec")
    if settings.train_codecs is None:
        return codecs, codecs, skipped
    train_codecs, train_skipped = resolve_codecs(settings.train_codecs, option="--train-codecs")
    if not train_codecs:
        raise RecipeError(f"--train-codecs {settings.train_codecs!r} leaves no usable codec")
    return codecs, train_codecs, {**skipped, **train_skipped}


def main(task: Task, run: Run) -> dict[str, Any] | None:
    """Everything a recipe does after parsing: codecs, accelerator, output folder, data, then the plan or the
    protocol.

    Returns:
        The results (as written to ``results.json``), or None for ``--dry-run`` and ``--stop-after``.

    Raises:
        RecipeError: a mistake in the options or the environment (the message says what to do).
    """
    from accelerate.utils import set_seed

    settings, options = run
    _check_data_root(options.data_root)
    # Before the accelerator, the data and the output folder: a misspelt or unusable codec fails at once.
    _say(f"codecs: checking {settings.codecs}" + (f" and {settings.train_codecs}" if settings.train_codecs else ""))
    codecs, train_codecs, skipped = _resolve_codecs(settings)
    accelerator = make_accelerator(settings, options)
    set_seed(settings.seed)
    lock = None
    if not options.dry_run and accelerator.is_main_process:
        # Before anything is written: one run per folder, and an earlier run is never silently replaced.
        lock, note = claim_output_dir(options.output_dir, resume=options.resume, overwrite=options.overwrite)
        if note:
            accelerator.print(note)
    try:
        data = _build_data(task, run, say=accelerator.print)
        text = plan(task, data, run, codecs, skipped, accelerator.num_processes, train_codecs)
        if options.dry_run:
            accelerator.print(text)
            return None
        # What the run will do and where it writes, before it starts: a log then says what it belongs to.
        accelerator.print(f"plan\n{textwrap.indent(text, '  ')}")
        start = time.time()
        results = Protocol(accelerator, task, data, run, codecs, train_codecs).run()
        if results is not None:
            accelerator.print("\n".join(["", *results_table(results), ""]))
        accelerator.print(f"total {time.time() - start:.0f} s; results in {options.output_dir}")
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
