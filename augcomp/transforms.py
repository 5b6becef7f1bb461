"""``Compress``: a torchvision-v2 transform that compresses each sample at a drawn quality or target bpp."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import PIL.Image
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2._utils import is_pure_tensor

from augcomp import codecs
from augcomp._api import compress
from augcomp._checks import per_sample
from augcomp._errors import ArgumentError
from augcomp._random import worker_generator

__all__ = ["Compress"]

Spec = float | tuple[float, float] | Sequence[float]


class Compress(v2.Transform):
    """Compresses images with a registered codec, per sample, at a drawn quality or target bitrate.

    Args:
        codec: a codec name, or a non-empty list of names to draw from per sample (:func:`augcomp.codecs.list`).
        bpp: target bits per pixel, finite and > 0: a number, a ``(lo, hi)`` tuple (log-uniform per sample), or a
            list of values to choose from. Give exactly one of ``bpp`` and ``quality``.
        quality: the codec's level (JPEG quality in [1, 100]): a number, a ``(lo, hi)`` tuple (uniform), or a list.
        p: probability that a sample is compressed; skipped samples cost nothing.
        same_on_batch: draw one set of parameters for every sample of a call.
        grad: ``"ste"``, ``"cubic"`` (JPEG) or ``"none"``; every codec must accept it.
        generator: random generator for the draws (its device decides where they are drawn). In DataLoader workers
            each worker re-seeds it from the worker's seed, so workers draw different parameters.
        **codec_options: passed to every codec (``subsampling="444"``, ``backend="torch"``, ...); checked here.

    Every image-like item of a sample (tensor, ``tv_tensors.Image``/``Video``, PIL image) gets its own draws, one
    per leading index. After each call :attr:`last_params` holds what was applied to all of them, concatenated in
    sample order: ``item`` (N,) index of the item, ``applied`` (N,) bool, ``codec`` N codec names,
    ``codec_index`` (N,) their index into ``codec_names``, ``target`` (N,) drawn bpp or quality, ``bpp`` and
    ``level`` (N,) achieved (NaN where skipped). ``transform(x, params)`` replays them.

    Shape:
        - Input: ``(..., C, H, W)`` tensors, ``tv_tensors.Image``/``Video`` (leading dimensions are samples), float
          in [0, 1] or uint8 in [0, 255], or PIL images (RGB or L). Boxes, masks, labels and other inputs pass
          through untouched; a sample with nothing to compress passes through whole.
        - Output: the same types, shapes, dtypes and devices.
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Video, is_pure_tensor, PIL.Image.Image)

    def __init__(self, codec: str | Sequence[str] = "jpeg", bpp: Spec | None = None, quality: Spec | None = None,
                 p: float = 1.0, same_on_batch: bool = False, grad: str = "ste",
                 generator: torch.Generator | None = None, **codec_options: Any) -> None:
        super().__init__()
        if (bpp is None) == (quality is None):
            raise ArgumentError("give exactly one of bpp= and quality= (a number, a (lo, hi) tuple or a list)")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ArgumentError(f"p must be a probability, a number in [0, 1], got {p!r}")
        if not isinstance(same_on_batch, bool):
            raise ArgumentError(f"same_on_batch must be True or False, got {same_on_batch!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ArgumentError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.codec_names = [codec] if isinstance(codec, str) else list(codec) if isinstance(codec, Sequence) else []
        if not self.codec_names or not all(isinstance(n, str) for n in self.codec_names):
            raise ArgumentError(f"codec must be a codec name or a non-empty list of names, got {codec!r}; known "
                                f"codecs: {', '.join(codecs.list())}")
        # Building each codec checks grad and every option now, not in a DataLoader worker later.
        entries = [codecs.get(name, grad=grad, **codec_options).entry for name in self.codec_names]
        self.mode, spec = ("bpp", bpp) if bpp is not None else ("quality", quality)
        if self.mode == "quality" and any(e.level_range != entries[0].level_range for e in entries):
            raise ArgumentError("quality= needs codecs with one level range; use bpp= to mix these codecs")
        lo, hi = (0.0, float("inf")) if self.mode == "bpp" else entries[0].level_range
        if isinstance(spec, list) and not spec:
            raise ArgumentError(f"{self.mode} as a list must hold at least one value")
        self.choices = torch.tensor([float(v) for v in spec]) if isinstance(spec, list) else None
        for value in spec if isinstance(spec, list) else [spec]:
            per_sample(value, 1, torch.device("cpu"), self.mode, lo, hi, low_inclusive=self.mode != "bpp",
                       high_inclusive=self.mode != "bpp")
        self.spec, self.range = spec, (lo, hi)
        self.p, self.same_on_batch, self.grad = float(p), same_on_batch, grad
        self.generator, self.codec_options = generator, codec_options
        self._params: dict[str, Any] | None = None

    @property
    def last_params(self) -> dict[str, Any] | None:
        """What the last call drew and applied (see the class docstring); None before the first call."""
        params = self._params
        if params is None:
            return None
        index = params["codec"]
        if len(self.codec_names) == 1:
            names = self.codec_names * index.shape[0]  # nothing to read back from the device
        else:
            names = [self.codec_names[i] for i in index.tolist()]
        public = {k: v for k, v in params.items() if not k.startswith("_") and k != "codec"}
        return {**public, "codec": names, "codec_index": index}

    def _choices_on(self, device: torch.device) -> Tensor:
        # Cached per device: copying from the host in every call would sync an accelerator.
        cache = self.__dict__.setdefault("_choices_cache", {})
        if device not in cache:
            cache[device] = self.choices.to(device)
        return cache[device]

    def _uniform(self, n: int, device: torch.device) -> Tensor:
        gen = worker_generator(self.generator)
        return torch.rand(n, generator=gen, device=device if gen is None else gen.device).to(device)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        items = [x for x in flat_inputs if isinstance(x, (Tensor, PIL.Image.Image))]
        sizes = [x.shape[:-3].numel() if isinstance(x, Tensor) else 1 for x in items]
        device = next((x.device for x in items if isinstance(x, Tensor)), torch.device("cpu"))
        total = sum(sizes)
        n = min(total, 1) if self.same_on_batch else total
        if self.choices is not None:
            pick = (self._uniform(n, device) * len(self.choices)).long().clamp_(max=len(self.choices) - 1)
            target = self._choices_on(device)[pick]
        else:
            target = per_sample(self.spec, n, device, self.mode, *self.range, log=self.mode == "bpp",
                                generator=worker_generator(self.generator), low_inclusive=self.mode != "bpp",
                                high_inclusive=self.mode != "bpp")
        codec = (self._uniform(n, device) * len(self.codec_names)).long().clamp_(max=len(self.codec_names) - 1)
        params = {"applied": self._uniform(n, device) < self.p, "codec": codec, "target": target}
        if self.same_on_batch:
            params = {k: v.expand(total) for k, v in params.items()}
        params["item"] = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(sizes, dtype=torch.long))
        params["bpp"] = torch.full((total,), float("nan"), device=device)
        params["level"] = params["bpp"].clone()
        params["_slices"] = {id(x): slice(sum(sizes[:i]), sum(sizes[: i + 1])) for i, x in enumerate(items)}
        self._params = params
        return params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if "codec_index" in params:  # last_params, replayed: the draws of the call it came from
            params = {**params, "codec": params["codec_index"]}
            if self._params is not None and params["item"] is self._params["item"]:
                params["_slices"] = self._params["_slices"]
        slices = params.get("_slices", {})
        sl = slices.get(id(inpt), next(iter(slices.values())) if len(slices) == 1 else slice(None))
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode not in ("RGB", "L"):
                raise ArgumentError(f"Compress takes PIL images in mode 'RGB' or 'L', got mode {inpt.mode!r}")
            return TF.to_pil_image(self._apply(TF.pil_to_tensor(inpt), params, sl), mode=inpt.mode)
        out = self._apply(inpt.as_subclass(Tensor), params, sl)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    def _apply(self, inpt: Tensor, params: dict[str, Any], sl: slice) -> Tensor:
        if inpt.ndim < 3:
            # As compress: an (H, W) tensor is ambiguous (one grayscale image, or rows of samples?).
            raise ArgumentError(f"Compress takes tensors of shape (..., C, H, W) (C = 1 for grayscale; add the channel "
                                f"dimension to an (H, W) image), PIL images and tv_tensors; got shape "
                                f"{tuple(inpt.shape)}")
        x = inpt.reshape(-1, *inpt.shape[-3:])
        applied, codec, target = (params[k][sl] for k in ("applied", "codec", "target"))
        out, achieved, level = x, params["bpp"][sl], params["level"][sl]
        everything = self.p >= 1.0 and len(self.codec_names) == 1
        for k, name in enumerate(self.codec_names):
            # With p = 1 and one codec there is nothing to select, so the batch stays whole (no host sync).
            index = None if everything else torch.nonzero(applied & (codec == k))[:, 0]
            if index is not None and index.numel() == 0:
                continue
            sub, tgt = (x, target) if index is None else (x[index], target[index])
            result = compress(sub, name, grad=self.grad, **{self.mode: tgt}, **self.codec_options)
            if index is None:
                out, achieved, level = result.image, result.bpp, result.level
            else:
                out = out.index_copy(0, index, result.image)
                achieved, level = achieved.index_copy(0, index, result.bpp), level.index_copy(0, index, result.level)
        params["bpp"][sl], params["level"][sl] = achieved.detach(), level.detach()
        return out.reshape(inpt.shape)

    def extra_repr(self) -> str:
        return f"codec={self.codec_names}, {self.mode}={self.spec}, p={self.p}, same_on_batch={self.same_on_batch}"
