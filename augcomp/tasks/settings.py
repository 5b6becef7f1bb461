"""The settings of a protocol run: one frozen dataclass per task, with a preset for the synthetic scenes and one for
the real dataset.

The recipes' options are built from these fields (:func:`augcomp.experiment.args.make_parser`), so ``--help`` shows
the values a run uses; an option given on the command line replaces the preset's value
(:meth:`Settings.merged`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_CODECS", "Settings", "TINY", "setting"]

# One codec per family (block DCT, wavelet, learned); why these, in the help of ``codecs`` below.
DEFAULT_CODECS = "jpeg,jpeg2000,avif,augcomp-tiny"

# --tiny: a run of a few seconds per phase on the synthetic scenes, for tests and smoke checks (options given on the
# command line still win).
TINY: dict[str, Any] = {
    "train_size": 48, "val_size": 24, "clean_epochs": 1, "epochs": 1, "batch_size": 16, "eval_batch_size": 24,
    "bpp_grid": (0.2, 1.0), "image_size": 48, "num_workers": 0,
}


def setting(default: Any, help: str, group: str, *, type: Any = None, choices: tuple | None = None,
            none: str = "none", metavar: str | None = None, resume: bool = False) -> Any:
    """A settings field with what its command-line option needs.

    Args:
        default: the value of the base class (presets override it).
        help: the option's help, without the default (added from the presets).
        group: the help section: ``"data"``, ``"model"``, ``"finetune"``, ``"sweep"`` or ``"run"``.
        type: the argparse type (default: the type of ``default``, or ``str``).
        choices: allowed values.
        none: how ``None`` reads in the help (``"all"`` for the subset sizes).
        metavar: the option's placeholder in the usage line.
        resume: whether ``--resume`` requires the value the run started with, because the saved state (models,
            checkpoints, the sweeps' points) means something else under another value.
    """
    meta = {"help": help, "group": group, "type": type, "choices": choices, "none": none, "metavar": metavar,
            "resume": resume}
    return field(default=default, metadata=meta)


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        raise ValueError(f"--{name.replace('_', '-')} must be {'>= 0' if allow_zero else 'positive'}, got {value}")


@dataclass(frozen=True)
class Settings:
    """Every setting of a protocol run that has a default. Tasks subclass it (adding their own fields) and give two
    presets: one for the synthetic scenes (no ``--data-root``) and one for their real dataset.

    Field names are the recipes' option names (``image_size`` is ``--image-size``). The options that only control a
    run (``--output-dir``, ``--resume``, ``--checkpoint``, ...) are not settings.

    A field made with ``setting(..., resume=True)`` must keep its value across ``--resume``; a subclass that
    redefines such a field keeps the mark only if it repeats it.
    """

    # data
    train_split: str = setting("train", "training split name", "data")
    val_split: str = setting("val", "validation split name", "data")
    train_size: int | None = setting(None, "synthetic: number of training scenes; real data: a fixed random subset "
                                           "of this size", "data", type=int, none="all", resume=True)
    val_size: int | None = setting(None, "likewise for the validation set", "data", type=int, none="all",
                                   resume=True)
    image_size: int = setting(224, "training and evaluation image side", "data", resume=True)
    num_workers: int = setting(0, "DataLoader workers per process", "data")
    # clean model
    model: str = setting("resnet50", "timm name (cls, seg backbone, det backbone) or torchvision detector", "model",
                         resume=True)
    model_kwargs: str | None = setting(None, "JSON object of extra keyword arguments for the model builder", "model",
                                       type=str, resume=True)
    clean_epochs: int = setting(0, "train the clean model on clean data for this many epochs (0: use --checkpoint or "
                                   "pretrained weights by --model name)", "model", resume=True)
    clean_lr: float = setting(1e-3, "peak learning rate of clean training", "model")
    # finetuning on compressed images
    epochs: int = setting(2, "finetuning epochs", "finetune", resume=True)
    lr: float = setting(1e-4, "peak learning rate of finetuning", "finetune")
    weight_decay: float = setting(0.05, "AdamW weight decay (both training phases)", "finetune")
    batch_size: int = setting(64, "training batch size per process", "finetune")
    eval_batch_size: int = setting(128, "evaluation batch size per process", "finetune")
    grad_accum: int = setting(1, "gradient accumulation steps", "finetune")
    clip_grad_norm: float | None = setting(None, "clip gradients to this norm", "finetune", type=float)
    warmup: float = setting(0.05, "fraction of steps with linear warm-up", "finetune")
    train_bpp: float | tuple[float, float] = setting(
        (0.1, 2.0), "bpp of training images: 'lo,hi' drawn log-uniformly per sample, or one fixed number", "finetune",
        metavar="LO,HI")
    train_codecs: str | None = setting(
        None, "codecs of finetuning, one drawn per training image (uniformly): comma-separated names or "
              "'available'. One finetuned model then serves every codec and bitrate of the sweep", "finetune",
        type=str, none="the --codecs of the sweep", metavar="C1,C2,...")
    clean_share: float = setting(
        0.5, "share of training images left uncompressed (each is compressed with probability 1 minus this). "
             "Follow-ups to the seed study report that mixing clean images in limits what finetuning costs on clean "
             "images. On the segmentation default a half kept clean mIoU within 0.5 points (a quarter lost 1.2) at "
             "no cost at the lowest bitrates, which sit near what their images allow", "finetune")
    # sweep
    codecs: str = setting(
        DEFAULT_CODECS, "comma-separated codec names, or 'available' (every codec usable here: the library codecs "
                        "whose packages are installed and the neural codecs whose weights are present). The default "
                        "compares codec families at matched bitrates: JPEG (block DCT, the reference; it cannot go "
                        "below about 0.16 bpp), JPEG 2000 (wavelet) and AVIF (AV1 intra), the two traditional codecs "
                        "that reach 0.1 bpp on every image, 64 px scenes included, and augcomp-tiny (learned, "
                        "shipped; about 0.17-0.40 bpp)", "sweep", metavar="C1,C2,...")
    bpp_grid: tuple[float, ...] = setting((0.1, 0.2, 0.5, 1.0, 2.0), "target bitrates of the sweep", "sweep",
                                          metavar="B1,B2,...")
    min_drop: float = setting(0.5, "recovery is reported only where clean minus before exceeds this many metric "
                                   "points", "sweep")
    cache_val_mb: float = setting(1024.0, "keep compressed validation batches in memory up to this size, so the sweep "
                                          "after finetuning reuses them (0 disables)", "sweep")
    # run
    seed: int = setting(0, "seed of initialization, shuffling, synthetic scenes, draws", "run", resume=True)

    def __post_init__(self) -> None:
        for name in ("image_size", "batch_size", "eval_batch_size", "grad_accum", "train_size", "val_size"):
            _positive(name, getattr(self, name))
        for name in ("epochs", "clean_epochs", "num_workers", "weight_decay", "warmup", "min_drop", "cache_val_mb"):
            _positive(name, getattr(self, name), allow_zero=True)
        _positive("lr", self.lr)
        _positive("clean_lr", self.clean_lr)
        _positive("clip_grad_norm", self.clip_grad_norm)
        if not (0.0 <= self.clean_share <= 1.0):
            raise ValueError(f"--clean-share must be in [0, 1], got {self.clean_share}")
        for name in ("codecs", "train_codecs"):
            value = getattr(self, name)
            if value is not None and not any(n.strip() for n in value.split(",")):
                raise ValueError(f"--{name.replace('_', '-')} is empty; give codec names such as 'jpeg', or "
                                 "'available'")
        if not self.bpp_grid or any(not (b > 0 and math.isfinite(b)) for b in self.bpp_grid):
            raise ValueError(f"--bpp-grid must hold positive bitrates, got {self.bpp_grid}")
        # A list (from the command line or a caller) becomes a tuple, so settings stay hashable and comparable.
        object.__setattr__(self, "bpp_grid", tuple(float(b) for b in self.bpp_grid))
        if isinstance(self.train_bpp, list):
            object.__setattr__(self, "train_bpp", tuple(self.train_bpp))

    def tiny(self) -> Settings:
        """These settings with the ``--tiny`` values (a seconds-long run on small synthetic scenes)."""
        return dataclasses.replace(self, **TINY)

    def merged(self, **given: Any) -> Settings:
        """These settings with the values in ``given`` that are not ``None`` (options left unset keep the preset's).

        Raises:
            ValueError: a value is out of range (the message names the option).
        """
        names = {f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: v for k, v in given.items() if k in names and v is not None})

    def as_dict(self) -> dict[str, Any]:
        """The settings by name (tuples stay tuples)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
