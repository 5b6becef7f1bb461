"""The one table of what a run writes into its output folder.

The output-folder guard (:mod:`augcomp.experiment.outdir`: what counts as an earlier run, what ``--overwrite`` moves
aside, which paths are checked for links), the report (:func:`augcomp.experiment.report.write_report`: which files it
writes, under which key) and the plan all read it, so a new output added here is guarded and preserved with no
other edit.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CKPT_DIR", "CLEAN_MODEL", "FINETUNED_MODEL", "LOGS_DIR", "REPORT_FILES", "RUN_FILE_TABLE", "RunFile",
           "STATE_FILE", "run_file_names"]


@dataclass(frozen=True)
class RunFile:
    """One file or folder a run writes.

    Attributes:
        name: its name inside the output folder.
        what: what it holds, for the plan and the docs.
        report: for a file the report writes, its key in :func:`~augcomp.experiment.report.write_report`'s result
            (and in the report's table of writers); ``None`` otherwise.
    """

    name: str
    what: str
    report: str | None = None


# The names the runner itself opens, defined once here and used by the table below.
STATE_FILE = "state.json"
CKPT_DIR = "ckpt"
CLEAN_MODEL = "clean_model.pt"
FINETUNED_MODEL = "finetuned_model.pt"
LOGS_DIR = "logs"

RUN_FILE_TABLE: tuple[RunFile, ...] = (
    RunFile(STATE_FILE, "progress of every phase, read by --resume"),
    RunFile(CKPT_DIR, "training checkpoints, one folder per training phase"),
    RunFile(CLEAN_MODEL, "weights of the clean model"),
    RunFile(FINETUNED_MODEL, "weights of the finetuned model"),
    RunFile("results.json", "every metric, bitrate and setting of the run", report="json"),
    RunFile("results.md", "the results as tables", report="md"),
    RunFile("robustness.png", "metric against achieved bpp, before and after finetuning", report="png"),
    RunFile("matched_bpp.png", "which codec hurts least at each bitrate", report="matched_png"),
    RunFile(LOGS_DIR, "tracker logs (--log-with)"),
)

# The report's files, by key.
REPORT_FILES: dict[str, RunFile] = {f.report: f for f in RUN_FILE_TABLE if f.report is not None}


def run_file_names() -> tuple[str, ...]:
    """The names of everything a run writes into its folder (the lock file aside)."""
    return tuple(f.name for f in RUN_FILE_TABLE)
