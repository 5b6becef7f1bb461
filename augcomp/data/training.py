"""Training samples whose every random choice is a function of (run seed, phase, epoch, sample index).

:class:`TrainingSamples` wraps a task's training set. For each sample it

1. runs the dataset's own loading and geometric augmentation with torch's global generator set, for that call only,
   from the sample's key, so a crop or flip does not depend on which worker or process loads the sample, nor on what
   was drawn before it;
2. when finetuning, draws the sample's codec, target bitrate, or clean (:class:`CodecMix`) from a generator keyed the
   same way;
3. compresses the sample right there when its codec is one that only a library computes and the sample is loaded in
   a DataLoader worker (after the geometric augmentation, before collation), through a :class:`VariantSource`.
   Samples drawn for a codec with a tensor path (``CodecEntry.tensor_path``) are left to the training process, which
   compresses them on the device batch; so are library samples loaded in the training process itself
   (``num_workers=0``), where the codec's thread pool codes the batch.

With ``variants`` (K, finetuning from a store of coded files, see :mod:`augcomp.data.train_store`), a sample is
instead left clean with the mix's clean share or takes one of its K stored variants, whatever its codec: the source
decodes it from the loaded image (before the geometry), in the worker or in the training process alike, and the
geometry is drawn on the decoded variant.

Where a sample is compressed never changes what it becomes: library codecs code each image on its own, so
``--num-workers 0`` and ``--num-workers 2`` train on identical batches.

Each sample gets ``"draw"``: ``{"codec": int (index into the mix, -1 clean), "target": float (bpp), "bpp": float
(achieved, NaN until coded), "coded": bool (coded where it was loaded), "stored": bool (decoded from a store)}``;
:func:`augcomp.data.collate` batches it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

from augcomp import codecs
from augcomp._errors import ArgumentError
from augcomp._random import keyed_generator, keyed_seed

__all__ = ["CodecMix", "Encode", "SampleKey", "TrainingSamples", "VariantSource"]


class SampleKey(NamedTuple):
    """What a training sample's draws are a function of."""

    seed: int
    phase: str
    epoch: int
    index: int


class CodecMix:
    """Per training sample: left clean with probability ``clean_share``, else a codec drawn uniformly from ``names``
    and a target bitrate from ``bpp``.

    Args:
        names: registered codec names (at least one).
        bpp: target bits per pixel: a number, or ``(lo, hi)`` drawn log-uniformly.
        clean_share: probability in [0, 1] that a sample stays clean.

    Attributes:
        in_loader: per codec, whether it is one that only a library computes (from the registry's
            ``tensor_path``), and so is compressed where samples are loaded.
    """

    def __init__(self, names: Sequence[str], bpp: float | tuple[float, float], clean_share: float) -> None:
        if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
            raise ArgumentError(f"names must be a non-empty list of codec names, got {names!r}; known codecs: "
                                f"{', '.join(codecs.list())}")
        self.names = list(names)
        self.in_loader = tuple(not codecs.entry(n).tensor_path for n in self.names)
        lo, hi = (bpp, bpp) if isinstance(bpp, (int, float)) else tuple(bpp)
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ArgumentError(f"bpp must be a positive number or a (lo, hi) range with 0 < lo <= hi, got {bpp!r}")
        if isinstance(clean_share, bool) or not 0.0 <= clean_share <= 1.0:
            raise ArgumentError(f"clean_share must be a number in [0, 1], got {clean_share!r}")
        self.bpp, self.clean_share = (float(lo), float(hi)), float(clean_share)

    def draw(self, generator: torch.Generator) -> tuple[int, float]:
        """``(codec, target)``: the codec's index (-1: clean) and the target bpp (NaN when clean).

        Always three uniforms from ``generator``, whatever they decide, so one draw never shifts another.
        """
        u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        if u[0] < self.clean_share:
            return -1, float("nan")
        codec = min(int(u[1] * len(self.names)), len(self.names) - 1)
        lo, hi = self.bpp
        # Rounded to float32, the precision a batch of targets has on the device, so that a sample coded in a
        # worker and one coded in the training process get the very same target.
        target = float(torch.tensor(math.exp(math.log(lo) + u[2] * (math.log(hi) - math.log(lo))),
                                    dtype=torch.float32))
        return codec, target


class VariantSource(Protocol):
    """Where a worker gets a training sample's compressed variant.

    The default, :class:`Encode`, codes the sample now; a store of coded files can stand in for it (looking the
    variant up by the sample's key, codec and target) without the pipeline changing.
    """

    def __call__(self, image: Tensor, codec: str, bpp: float, key: SampleKey) -> tuple[Tensor, float]:
        """Returns the decoded variant (like ``image``) and its achieved bpp.

        Shape:
            - image: ``(3, H, W)`` uint8; output alike.
        """
        ...


class Encode:
    """A :class:`VariantSource` that encodes and decodes with the codec itself (the codec's exact output)."""

    def __call__(self, image: Tensor, codec: str, bpp: float, key: SampleKey) -> tuple[Tensor, float]:
        from augcomp import compress

        with torch.no_grad():
            out = compress(image[None], codec=codec, bpp=torch.tensor([bpp], dtype=torch.float32), grad="none")
        return out.image[0], float(out.bpp[0])


class TrainingSamples(Dataset):
    """A training set with keyed draws and, when finetuning, library-codec compression where samples are loaded.

    Args:
        dataset: the task's training set (samples as described in :mod:`augcomp.data`).
        seed: the run's seed.
        phase: a name that separates the draws of training phases (``"clean"``, ``"finetune"``).
        mix: the finetuning mix; ``None`` for clean training (keyed geometry only).
        source: where worker-side compressed variants come from (default :class:`Encode`).
        library_in_workers: compress library-codec samples in DataLoader workers; ``False`` leaves every sample to
            the training process (the placement before workers did this work, for comparison).
        variants: K > 0: finetune from K stored variants per image, which ``source`` (a
            :class:`~augcomp.data.train_store.StoredVariants`) decodes from the image before its geometry; 0: code
            as described above.

    Call :meth:`set_epoch` before each epoch; DataLoader workers must not outlive an epoch (no
    ``persistent_workers``), so that they see it.
    """

    def __init__(self, dataset: Dataset, seed: int, phase: str, mix: CodecMix | None = None,
                 source: VariantSource | None = None, library_in_workers: bool = True, variants: int = 0) -> None:
        self.dataset, self.seed, self.phase, self.mix = dataset, int(seed), str(phase), mix
        if isinstance(variants, bool) or not isinstance(variants, int) or variants < 0:
            raise ArgumentError(f"variants must be a non-negative integer, got {variants!r}")
        if variants and (mix is None or source is None):
            raise ArgumentError("variants needs a mix and a source to decode them from (StoredVariants)")
        self.source: VariantSource = source if source is not None else Encode()
        self.library_in_workers = bool(library_in_workers)
        self.variants = variants
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch the next samples belong to."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def key(self, index: int) -> SampleKey:
        """The key of sample ``index`` in the current epoch."""
        return SampleKey(self.seed, self.phase, self.epoch, int(index))

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.key(index)
        if self.variants:
            return self._stored(index, key)
        # torchvision's random transforms draw from torch's global generator; it is set from the key for this call
        # only (CPU state only: torch.manual_seed would also reseed CUDA in the training process).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(keyed_seed(*key, "geometry"))
            sample = self.dataset[index]
        if self.mix is None:
            return sample
        codec, target = self.mix.draw(keyed_generator(*key, "codec"))
        image, bpp, coded = sample["image"], float("nan"), False
        if codec >= 0 and self.mix.in_loader[codec] and self.library_in_workers and get_worker_info() is not None:
            image, bpp = self.source(image, self.mix.names[codec], target, key)
            coded = True
        return {**sample, "image": image,
                "draw": {"codec": codec, "target": target, "bpp": bpp, "coded": coded, "stored": False}}

    def _stored(self, index: int, key: SampleKey) -> dict[str, Any]:
        from augcomp.data.train_store import augment_sample, load_sample, variant_choice, variant_draw

        assert self.mix is not None
        sample = load_sample(self.dataset, index)
        k = variant_choice(key, self.variants, self.mix.clean_share)
        codec, target, bpp = -1, float("nan"), float("nan")
        if k >= 0:
            codec, target = variant_draw(self.mix, self.seed, k, index)
            image, bpp = self.source(sample["image"], self.mix.names[codec], target, key)
            sample = {**sample, "image": image}
        # The same keyed geometry as a sample loaded whole, now on the decoded variant.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(keyed_seed(*key, "geometry"))
            sample = augment_sample(self.dataset, sample)
        return {**sample, "draw": {"codec": codec, "target": target, "bpp": bpp, "coded": k >= 0, "stored": k >= 0}}
