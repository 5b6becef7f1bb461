"""Neural codecs: CompressAI's image zoo and augcomp's own small trained codec, as frozen batched augmentations.

Every codec is declared once below, by one :func:`~augcomp.codecs.registry.register` call whose builder is an
:class:`~augcomp.codecs._compressai_models.Arch` (the CompressAI class, its widths per level and its forward
family). compressai is imported only when a model is first built, so ``import augcomp`` and
``augcomp.codecs.list()`` stay light.

Levels: discrete codecs use CompressAI's quality index (1..8, or 1..6 for cheng2020; 1..4 for ``augcomp-tiny``).
The variable-rate (``-vbr``) codecs take a continuous level, CompressAI's ``inputscale``: the gain applied to the
latent before rounding (the inverse of the quantization step), from 0.1 (lowest rate) to 1.0 (highest rate), the
range of the gains the models were trained with.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augcomp._errors import ArgumentError
from augcomp.codecs._compressai_models import (
    AUTOREGRESSIVE,
    FACTORIZED,
    HYPERPRIOR,
    MEAN_SCALE,
    VBR_AUTOREGRESSIVE,
    VBR_HYPERPRIOR,
    VBR_MEAN_SCALE,
    Arch,
    build_model,
    forward_model,
    per_quality,
)
from augcomp.codecs.base import Codec
from augcomp.codecs.registry import ANY_DEVICE, CodecEntry, on_clear, register
from augcomp.rate import closeness, drops_converged, search

__all__ = ["NEURAL_OPTIONS", "NeuralCodec", "ZooBuilder", "VBR_GAIN_RANGE", "clear_models", "get_model"]

# CompressAI's variable-rate models are trained with gains 0.1 .. 1.0 (ScaleHyperpriorVbr.Gain at initialisation).
VBR_GAIN_RANGE = (0.1, 1.0)
# Rate control tries gains on a grid of this step in log(gain) (about 0.5% apart): fine next to the 4% tolerance,
# and a grid makes the choice robust to last-bit differences between devices.
GAIN_LOG_STEP = 0.005


class NeuralCodec(Codec):
    """A frozen neural codec (one model per level, or one variable-rate model) as a batched augmentation.

    The codec pads its input to the model's multiple by edge replication, runs the model's eval-mode forward pass
    with straight-through rounding (``grad="ste"``) or without autograd (``grad="none"``), crops back and clamps to
    [0, 1]. Bits are the sum of ``-log2`` of every likelihood (latent and hyper-latent) of each sample, which is
    what CompressAI's ``compress()`` writes up to the entropy coder's overhead.

    With ``grad="ste"``, autograd runs only when the input requires grad; otherwise the pass runs without it.
    Models are built once per (codec, metric, weights, level, device) and shared by every codec instance; the
    codec itself holds no parameters, so ``.to(device)`` is free and inputs decide the device.

    Args:
        entry: the registry entry.
        arch: which models to build.
        grad: ``"ste"`` or ``"none"``.
        metric: ``"mse"`` or ``"ms-ssim"``: the distortion the weights were trained for.
        pretrained: load trained weights (default). ``False`` builds seeded random weights, for tests only.
        weights: a folder of checkpoints named as the CompressAI zoo names them (the URL basename), or one
            checkpoint file, then used for every level (for ``augcomp-tiny``: a folder with its JSON and safetensors
            files, as ``recipes/train_codec.py`` writes them). Default: the ``AUGCOMP_WEIGHTS`` folder, then the
            torch hub cache, then a download (CompressAI zoo); the package's own files (``augcomp-tiny``).
        max_batch: largest batch given to a model at once (bounds memory).
        autocast: run the analysis and synthesis transforms under autocast (bfloat16, or float16 on GPUs without
            bfloat16); the entropy models always run in float32. Off by default: results then do not depend on the
            caller's autocast.

    Shape:
        - x: ``(B, 3, H, W)`` or ``(3, H, W)``; float in [0, 1] or uint8 in [0, 255].
        - level: ``(B,)`` quality index (rounded to an integer for discrete codecs) or VBR gain.
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    runtime_options = ("grad", "max_batch")

    def __init__(self, entry: CodecEntry, arch: Arch, *, grad: str = "ste", metric: str = "mse",
                 pretrained: bool = True, weights: str | os.PathLike | None = None, max_batch: int = 16,
                 autocast: bool = False) -> None:
        super().__init__(entry, grad=grad)
        if metric not in arch.metrics:
            raise ArgumentError(f"{entry.name} has weights for metric in {arch.metrics}, got metric={metric!r}")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ArgumentError(f"max_batch must be a positive int, got {max_batch!r}")
        if weights is not None and not pretrained:
            raise ArgumentError("weights= loads trained weights; it cannot be combined with pretrained=False")
        self.arch = arch
        self.metric = metric
        self.pretrained = bool(pretrained)
        self.weights = None if weights is None else os.fspath(weights)
        self.max_batch = max_batch
        self.autocast = bool(autocast)

    # ------------------------------------------------------------------------------------------------ models

    def model(self, level: int, device: torch.device | str = "cpu") -> nn.Module:
        """The frozen CompressAI model for an integer ``level`` (any level for variable-rate codecs) on ``device``."""
        return get_model(self.entry.name, self.arch, self.arch.model_index(level), torch.device(device),
                         self.metric, self.pretrained, self.weights)

    def _wants_grad(self, x: Tensor) -> bool:
        return self.grad == "ste" and torch.is_grad_enabled() and x.requires_grad

    def _run(self, x: Tensor, model: nn.Module, gain: Tensor | None, quantize_grad: bool) -> tuple[Tensor, Tensor]:
        """Pads, runs ``model`` in chunks of ``max_batch``, crops and clamps."""
        h, w = x.shape[-2:]
        m = self.entry.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        images, bits = [], []
        for start in range(0, x.shape[0], self.max_batch):
            sl = slice(start, start + self.max_batch)
            out = forward_model(model, self.arch.kind, xp[sl], gain=None if gain is None else gain[sl],
                                quantize_grad=quantize_grad, autocast=self.autocast)
            images.append(out.x_hat[..., :h, :w].clamp(0.0, 1.0))
            bits.append(out.bits)
        return torch.cat(images), torch.cat(bits)

    def _compress_levels(self, x: Tensor, level: Tensor, with_grad: bool) -> tuple[Tensor, Tensor]:
        """Each sample at its own level; samples sharing a model run together, once."""
        if not with_grad:
            with torch.no_grad():
                return self._compress_levels_impl(x, level, False)
        return self._compress_levels_impl(x, level, True)

    def _compress_levels_impl(self, x: Tensor, level: Tensor, with_grad: bool) -> tuple[Tensor, Tensor]:
        if self.arch.variable_rate:
            return self._run(x, self.model(1, x.device), level, with_grad)
        if x.shape[0] == 0:
            return x.clone(), torch.zeros(0, device=x.device)
        # One host sync to learn which models are needed: unavoidable when each level is its own network.
        wanted = level.round().to(torch.long)
        indices, images, bits = [], [], []
        for q in torch.unique(wanted).tolist():
            idx = (wanted == q).nonzero().squeeze(1)
            img, b = self._run(x.index_select(0, idx), self.model(int(q), x.device), None, with_grad)
            indices.append(idx)
            images.append(img)
            bits.append(b)
        order = torch.cat(indices)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return torch.cat(images).index_select(0, inverse), torch.cat(bits).index_select(0, inverse)

    def canonical_level(self, level: Tensor) -> Tensor:
        """The level actually used: rounded for discrete codecs."""
        return level if self.arch.variable_rate else level.round()

    # ------------------------------------------------------------------------------------------------ codec API

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        return self._compress_levels(x, self.canonical_level(level), self._wants_grad(x))

    # ------------------------------------------------------------------------------------------------ files

    def _compress_files(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor, list[bytes]]:
        """Each sample coded alone (outputs of floating-point models depend a little on the batch): CompressAI's
        ``compress()`` strings and the ``decompress()``-ed image (``file_kind="strings"``), or the forward pass's
        image as a PNG with its likelihood bits (``"pixels"``). No gradient flows through coded files."""
        from augcomp.codecs import _neural_files as nf

        level = self.canonical_level(level)
        images, bits, files = [], [], []
        h, w = x.shape[-2:]
        with torch.no_grad():
            for i, lv in enumerate(level.tolist()):
                xi = x[i:i + 1]
                if self.entry.file_kind == "pixels":
                    image, b = self._compress_levels(xi, level[i:i + 1], False)
                    u8 = (image[0] * 255.0).round().to(torch.uint8)
                    images.append(u8.to(torch.float32)[None] / 255.0)
                    bits.append(b)
                    files.append(nf.png_bytes(u8))
                    continue
                gain = lv if self.arch.variable_rate else None
                model = self.model(1 if gain is not None else int(lv), x.device)
                strings, shape = nf.run_compress(model, xi.to(torch.float32), self.entry.pad_multiple, gain)
                image = nf.run_decompress(model, strings, shape, h, w, gain, x.device)
                # The stored file decodes to uint8; the image returned is the same pixels.
                images.append((image * 255.0).round() / 255.0)
                bits.append(torch.tensor([8.0 * sum(len(s) for s in strings)], device=x.device))
                files.append(nf.pack_strings({"codec": self.name, "level": lv, "height": h, "width": w,
                                              "shape": shape}, strings))
        if not images:
            return x.clone(), torch.zeros(0, device=x.device), []
        return torch.cat(images), torch.cat(bits), files

    def decode_file(self, data: bytes, channels: int = 3) -> Tensor:
        from augcomp.codecs import _neural_files as nf

        if self.entry.file_kind == "pixels":
            return nf.png_pixels(data)
        header, strings = nf.unpack_strings(data)
        if header.get("codec") != self.name:
            raise ArgumentError(f"this file was coded by {header.get('codec')!r}, not {self.name!r}")
        gain = float(header["level"]) if self.arch.variable_rate else None
        model = self.model(1 if gain is not None else int(header["level"]), "cpu")
        image = nf.run_decompress(model, strings, header["shape"], header["height"], header["width"], gain,
                                  torch.device("cpu"))
        return (image[0] * 255.0).round().to(torch.uint8)

    def library_version(self) -> str:
        import compressai

        source = "package" if self.entry.weights == "package" else (self.weights or "zoo")
        return f"compressai {compressai.__version__} (torch {torch.__version__}; weights {source})"

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per sample, the level whose coded bpp is closest to the target (in log ratio).

        Discrete codecs: a bisection over the quality index in which each model runs once per step on the samples
        that need it and no (sample, level) pair is measured twice: at most ``ceil(log2(L)) + 1`` passes over the
        batch for ``L`` levels. Variable-rate codecs: the shared engine over ``log(gain)`` (:meth:`_fit_gain`).
        Search passes run without autograd; with ``grad="ste"`` and an input that requires grad, one last pass at
        the chosen levels carries the gradient. Otherwise the search returns the outputs it measured.
        """
        target = bpp.to(torch.float32) * float(x.shape[-2] * x.shape[-1])
        lo, hi = self.entry.level_range
        self._require_every_level(x.device)
        keep = not self._wants_grad(x)
        if self.arch.variable_rate:
            return self._fit_gain(x, target, keep)

        def measure(level: Tensor, active: Tensor) -> tuple[Tensor, Tensor | None]:
            image, bits = self._measure_active(x, level, active, keep)
            return bits, image

        level, bits, image = _bisect_discrete(measure, target, int(lo), int(hi), keep_images=keep,
                                              early_stop=drops_converged(x.device))
        if not keep:
            image, bits = self._compress_levels(x, level, True)
        return image, bits, level

    def _fit_gain(self, x: Tensor, target: Tensor, keep: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Variable-rate search: :func:`augcomp.rate.search` over ``log(gain)``, where log-rate is nearly linear.

        On the CPU only the samples still searching run (converged ones leave); elsewhere every step runs the whole
        batch (no host sync). Without gradients the best image seen is kept, so no pass is repeated at the end.
        """
        lo, hi = (math.log(v) for v in self.entry.level_range)
        best_err = torch.full_like(target, math.inf)
        best_image = torch.zeros_like(x) if keep else None

        def measure(log_gain: Tensor, active: Tensor) -> Tensor:
            nonlocal best_err, best_image
            image, bits = self._measure_active(x, log_gain.exp(), active, keep)
            if keep:
                # search() keeps the candidate of least error, first found on ties: the same rule picks the image.
                err = torch.where(active, closeness(bits, target), torch.full_like(best_err, math.inf))
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best_image = torch.where(better.view(-1, 1, 1, 1), image, best_image)
            return bits

        log_gain, bits = search(measure, target, lo, hi, discrete=False, step=GAIN_LOG_STEP,
                                early_stop=drops_converged(x.device))
        gain = log_gain.exp().clamp(*self.entry.level_range)  # exp(log(lo)) can round below lo in float32
        if keep:
            return best_image, bits, gain
        image, bits = self._compress_levels(x, gain, True)
        return image, bits, gain

    def _measure_active(self, x: Tensor, level: Tensor, active: Tensor, keep: bool) -> tuple[Tensor | None, Tensor]:
        """Image (when ``keep``) and bits at ``level`` for the samples a search still measures.

        Where converged samples leave the search (the CPU), only the active ones run, and the others come back as a
        zero image and one bit, which the search ignores. Elsewhere the whole batch runs: picking the active samples
        would need their count on the host.
        """
        if not drops_converged(x.device):
            image, bits = self._compress_levels(x, level, False)
            return (image if keep else None), bits
        bits = torch.ones(x.shape[0], device=x.device)
        image = torch.zeros_like(x) if keep else None
        idx = active.nonzero().squeeze(1)
        if idx.numel():
            some_image, some_bits = self._compress_levels(x.index_select(0, idx), level.index_select(0, idx), False)
            bits = bits.index_copy(0, idx, some_bits)
            if keep:
                image = image.index_copy(0, idx, some_image)
        return image, bits

    def _require_every_level(self, device: torch.device) -> None:
        """Loads every model a search may need, so that missing weights are named all at once, before any work."""
        from augcomp.codecs.weights import WeightsNotFoundError

        missing = []
        for level in range(1, self.arch.num_models + 1):
            try:
                self.model(level, device)
            except WeightsNotFoundError as err:
                missing.append((level, err))
        if len(missing) == 1:
            raise missing[0][1]
        if missing:
            files = ", ".join(str(getattr(err, "missing_file", level)) for level, err in missing)
            raise WeightsNotFoundError(
                f"bpp= targeting with {self.name} needs the weights of all {self.arch.num_models} levels; "
                f"{len(missing)} are missing: {files}. {missing[0][1]}"
            )

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, arch={self.arch.cls_name}, metric={self.metric!r}, "
                f"pretrained={self.pretrained}, max_batch={self.max_batch}")


def _bisect_discrete(measure: Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]], target: Tensor, low: int,
                     high: int, *, keep_images: bool, early_stop: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """The discrete search of :func:`augcomp.rate.bisect_levels`, never measuring a (sample, level) pair twice.

    ``measure(level, active)`` returns bits (and images, if kept) for the ``active`` samples; samples whose interval
    has closed, or whose midpoint was measured already, are left out, and with ``early_stop`` the search stops once
    none is left (which reads a flag on the host). Without it the loop runs its full length; the result is the same.

    Returns:
        ``(level, bits, image)`` of the closest candidate per sample (``image`` None unless ``keep_images``).
    """
    device = target.device
    batch = target.shape[0]
    n_levels = high - low + 1
    lo = torch.full((batch,), float(low), device=device)
    hi = torch.full((batch,), float(high), device=device)
    best_level = hi.clone()
    best_bits, best_image = measure(best_level, torch.ones(batch, dtype=torch.bool, device=device))
    best_err = closeness(best_bits, target)
    seen = torch.zeros(batch, n_levels, dtype=torch.bool, device=device)
    known = torch.zeros(batch, n_levels, device=device)
    seen[:, -1] = True
    known[:, -1] = best_bits
    for _ in range(max(1, math.ceil(math.log2(n_levels))) + 1):
        mid = torch.floor((lo + hi) / 2)
        col = (mid - low).long().clamp(0, n_levels - 1)[:, None]
        done = seen.gather(1, col).squeeze(1)
        if early_stop and bool(done.all()):
            break
        fresh_bits, images = measure(mid, ~done)
        bits = torch.where(done, known.gather(1, col).squeeze(1), fresh_bits)
        seen.scatter_(1, col, True)
        known.scatter_(1, col, bits[:, None])
        err = closeness(bits, target)
        better = (err < best_err) & ~done
        best_level = torch.where(better, mid, best_level)
        best_bits = torch.where(better, bits, best_bits)
        best_err = torch.where(better, err, best_err)
        if keep_images:
            best_image = torch.where(better.view(-1, 1, 1, 1), images, best_image)
        go_up = bits < target
        lo = torch.where(go_up, mid + 1, lo)
        hi = torch.where(go_up, hi, mid)
    return best_level, best_bits, best_image


# ---------------------------------------------------------------------------------------------------- model cache

_MODELS: dict[tuple, nn.Module] = {}
_LOCK = threading.Lock()


@on_clear
def clear_models() -> None:
    """Forgets every built neural model (frees memory; the next use rebuilds or reloads); runs on every
    :func:`~augcomp.codecs.registry.clear_cache`."""
    with _LOCK:
        _MODELS.clear()


def get_model(name: str, arch: Arch, index: int, device: torch.device, metric: str = "mse", pretrained: bool = True,
              weights: str | None = None) -> nn.Module:
    """The frozen model ``index`` of codec ``name``, built once per device and shared.

    Raises:
        WeightsNotFoundError: ``pretrained`` weights are neither on disk nor downloadable.
    """
    source = (metric, pretrained, weights)
    key = (name, *source, index, str(device))
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            cpu_key = (name, *source, index, "cpu")
            cpu = _MODELS.get(cpu_key)
            if cpu is None:
                cpu = _freeze(_load(name, arch, index, metric, pretrained, weights))
                _MODELS[cpu_key] = cpu
            model = cpu if device.type == "cpu" else _freeze(copy.deepcopy(cpu).to(device))
            _MODELS[key] = model
    return model


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def _load(name: str, arch: Arch, index: int, metric: str, pretrained: bool, weights: str | None) -> nn.Module:
    from augcomp.codecs import weights as w

    model = build_model(arch, index)
    level = index + 1
    if pretrained:
        if arch.zoo:
            quality = None if arch.variable_rate else level
            what = f"{name} quality {level} ({metric})" if quality else f"{name} ({metric})"
            path = w.resolve_zoo_file(what, w.zoo_url(arch.zoo, metric, quality), weights)
            w.load_into(model, w.load_checkpoint(path), f"{what} from {path}")
        else:
            meta, states = w.load_package_states(name, weights)
            expected = {"architecture": arch.cls_name, "N": arch.widths[index][0], "M": arch.widths[index][1],
                        "levels": arch.num_models}
            found = {k: meta.get(k) for k in expected}
            if found != expected:
                raise ArgumentError(f"the weights found for {name} describe {found}, but the codec expects {expected}")
            w.load_into(model, states[index], f"{name} level {level}")
    # CDF tables for compress(); a no-op when the checkpoint carried them.
    model.update()
    return model


# ---------------------------------------------------------------------------------------------------- registry


# The keyword options of NeuralCodec, declared on every neural entry (the builder supplies ``arch``).
NEURAL_OPTIONS = ("grad", "metric", "pretrained", "weights", "max_batch", "autocast")


@dataclass(frozen=True)
class ZooBuilder:
    """Registry builder: ``builder(entry, **options)`` -> :class:`NeuralCodec` for one :class:`Arch`."""

    arch: Arch

    def __call__(self, entry: CodecEntry, **options) -> NeuralCodec:
        return NeuralCodec(entry, self.arch, **options)


def _register(name: str, arch: Arch, *, pad_multiple: int, description: str, family: str = "compressai",
              weights: str = "compressai") -> None:
    level_range = VBR_GAIN_RANGE if arch.variable_rate else (1.0, float(arch.num_models))
    # compress() of the context models decodes one latent position at a time (see _neural_files).
    serial = arch.kind in (AUTOREGRESSIVE, VBR_AUTOREGRESSIVE)
    register(CodecEntry(name=name, builder=ZooBuilder(arch), level_range=level_range,
                        discrete=not arch.variable_rate, level_name="gain" if arch.variable_rate else "quality",
                        channels=(3,), devices=ANY_DEVICE, grad_modes=("ste", "none"), extra="neural",
                        requires=("compressai",), pad_multiple=pad_multiple, weights=weights, family=family,
                        description=description, file_kind="pixels" if serial else "strings",
                        batch_invariant=False, accepted=NEURAL_OPTIONS))


# Widths (N, M) per quality are those of CompressAI's zoo checkpoints; each model family below is the class those
# checkpoints were trained as (CompressAI's own "bmshj2018-factorized-relu" zoo entry builds the GDN model instead).
_SMALL, _LARGE = (128, 192), (192, 320)
_register("bmshj2018-factorized",
          Arch("FactorizedPrior", FACTORIZED, per_quality((range(1, 6), _SMALL), (range(6, 9), _LARGE)),
               zoo="bmshj2018-factorized"),
          pad_multiple=16, description="Balle et al. 2018, factorized prior (CompressAI zoo)")
_register("bmshj2018-hyperprior",
          Arch("ScaleHyperprior", HYPERPRIOR, per_quality((range(1, 6), _SMALL), (range(6, 9), _LARGE)),
               zoo="bmshj2018-hyperprior"),
          pad_multiple=64, description="Balle et al. 2018, scale hyperprior (CompressAI zoo)")
_register("mbt2018-mean",
          Arch("MeanScaleHyperprior", MEAN_SCALE, per_quality((range(1, 5), _SMALL), (range(5, 9), _LARGE)),
               zoo="mbt2018-mean"),
          pad_multiple=64, description="Minnen et al. 2018, mean-scale hyperprior (CompressAI zoo)")
_register("mbt2018",
          Arch("JointAutoregressiveHierarchicalPriors", AUTOREGRESSIVE,
               per_quality((range(1, 5), (192, 192)), (range(5, 9), _LARGE)), zoo="mbt2018"),
          pad_multiple=64, description="Minnen et al. 2018, joint autoregressive and hierarchical priors "
                                       "(CompressAI zoo; parallel forward)")
_register("cheng2020-anchor",
          Arch("Cheng2020Anchor", AUTOREGRESSIVE, per_quality((range(1, 4), (128,)), (range(4, 7), (192,))),
               zoo="cheng2020-anchor"),
          pad_multiple=64, description="Cheng et al. 2020, anchor (CompressAI zoo; parallel forward)")
_register("cheng2020-attn",
          Arch("Cheng2020Attention", AUTOREGRESSIVE, per_quality((range(1, 4), (128,)), (range(4, 7), (192,))),
               zoo="cheng2020-attn"),
          pad_multiple=64, description="Cheng et al. 2020, with attention (CompressAI zoo; parallel forward)")
# The variable-rate checkpoints of the two hyperprior models were trained with a gain-dependent hyper-latent step.
_register("bmshj2018-hyperprior-vbr",
          Arch("ScaleHyperpriorVbr", VBR_HYPERPRIOR, (_LARGE,), metrics=("mse",), zoo="bmshj2018-hyperprior-vbr",
               init_kwargs={"vr_entbttlnck": True}),
          pad_multiple=64, description="variable-rate scale hyperprior, Kamisli et al. 2024 (CompressAI zoo)")
_register("mbt2018-mean-vbr",
          Arch("MeanScaleHyperpriorVbr", VBR_MEAN_SCALE, (_LARGE,), metrics=("mse",), zoo="mbt2018-mean-vbr",
               init_kwargs={"vr_entbttlnck": True}),
          pad_multiple=64, description="variable-rate mean-scale hyperprior, Kamisli et al. 2024 (CompressAI zoo)")
_register("mbt2018-vbr",
          Arch("JointAutoregressiveHierarchicalPriorsVbr", VBR_AUTOREGRESSIVE, (_LARGE,), metrics=("mse",),
               zoo="mbt2018-vbr"),
          pad_multiple=64, description="variable-rate mbt2018, Kamisli et al. 2024 (CompressAI zoo; parallel forward)")
_register("augcomp-tiny",
          Arch("ScaleHyperprior", HYPERPRIOR, per_quality((range(1, 5), (48, 64))), metrics=("mse",)),
          pad_multiple=64, family="neural (augcomp)", weights="package",
          description="small scale hyperprior trained by augcomp (recipes/train_codec.py), shipped with the package")
