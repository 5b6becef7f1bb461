"""The robustness protocol shared by ``recipes/{cls,det,seg}.py``.

clean model -> sweep (clean and every codec x bitrate) -> finetune one model on compressed images (per image a codec
from the mix and a bitrate from the range, a share left clean, all keyed by seed, epoch and image; library codecs in
the DataLoader workers, tensor codecs on the device batch) -> sweep again -> report
(``results.json``, ``results.md``, ``robustness.png``, ``matched_bpp.png``), with exactly resumable state, atomic
writes, a locked output folder that nothing is written outside of, and one-line errors for expected failures.
"""

from augcomp.experiment.args import make_parser, parse_args, parse_bpp_range, parse_grid
from augcomp.experiment.codecs import CodecUnavailableError, codec_usable, resolve_codecs
from augcomp.experiment.errors import OutputDirError, RecipeError, SaveError
from augcomp.experiment.io import RunState, atomic_torch_save, atomic_write_json, atomic_write_text
from augcomp.experiment.loops import apply_compress, compress_images, evaluate, train_epoch, warmup_cosine
from augcomp.experiment.options import Run, RunOptions
from augcomp.experiment.outdir import claim_output_dir
from augcomp.experiment.protocol import Protocol, StopRequested
from augcomp.experiment.recipe import main, make_accelerator, plan, recipe_entry_point, run_recipe
from augcomp.experiment.report import (
    build_results,
    matched_bpp,
    plot_matched_bpp,
    plot_robustness,
    recovery,
    results_markdown,
    write_report,
)

__all__ = [
    "CodecUnavailableError",
    "OutputDirError",
    "Protocol",
    "RecipeError",
    "Run",
    "RunOptions",
    "RunState",
    "SaveError",
    "StopRequested",
    "apply_compress",
    "atomic_torch_save",
    "atomic_write_json",
    "atomic_write_text",
    "build_results",
    "claim_output_dir",
    "codec_usable",
    "compress_images",
    "evaluate",
    "main",
    "make_accelerator",
    "make_parser",
    "matched_bpp",
    "parse_args",
    "parse_bpp_range",
    "parse_grid",
    "plan",
    "plot_matched_bpp",
    "plot_robustness",
    "recipe_entry_point",
    "recovery",
    "resolve_codecs",
    "results_markdown",
    "run_recipe",
    "train_epoch",
    "warmup_cosine",
    "write_report",
]
