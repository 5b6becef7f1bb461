"""CompressAI models as augmentations: what to build per level, and a forward pass with straight-through rounding.

Nothing here imports compressai at module import time; the models are built (and compressai imported) only when a
neural codec is first used.

The forward passes below re-run each model's own components (``g_a``, ``h_a``, the entropy models, ``g_s``) so that
their values are exactly those of CompressAI's ``eval()`` forward, while rounding passes gradients straight through
(CompressAI's eval rounding has a zero gradient).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from augcomp.functional.quant import ste_round

__all__ = ["Arch", "KINDS", "Output", "build_model", "forward_model", "per_quality"]

# The forward pass of each model family; they differ in what the hyperprior predicts and in how y is quantized.
FACTORIZED = "factorized"  # y coded by a fully factorized entropy bottleneck
HYPERPRIOR = "hyperprior"  # zero-mean Gaussian with scales from the hyperprior
MEAN_SCALE = "mean-scale"  # Gaussian with means and scales from the hyperprior
AUTOREGRESSIVE = "autoregressive"  # mean-scale plus a masked-convolution context model (mbt2018, cheng2020)
VBR_HYPERPRIOR = "vbr-hyperprior"  # variable rate: y scaled by a gain, quantization offsets, scalable z step
VBR_MEAN_SCALE = "vbr-mean-scale"
VBR_AUTOREGRESSIVE = "vbr-autoregressive"
KINDS = (FACTORIZED, HYPERPRIOR, MEAN_SCALE, AUTOREGRESSIVE, VBR_HYPERPRIOR, VBR_MEAN_SCALE, VBR_AUTOREGRESSIVE)


@dataclass(frozen=True)
class Arch:
    """The single description of one neural codec's models.

    Attributes:
        cls_name: class name in ``compressai.models``.
        kind: one of the forward families above.
        widths: constructor arguments (N, M, ...) for each level, level 1 first; one entry for a variable-rate model.
        metrics: distortion metrics with trained weights.
        zoo: CompressAI zoo name (the key of its URL table); empty for models that ship with augcomp.
        init_kwargs: extra constructor keyword arguments.
    """

    cls_name: str
    kind: str
    widths: tuple[tuple[int, ...], ...]
    metrics: tuple[str, ...] = ("mse", "ms-ssim")
    zoo: str = ""
    init_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {KINDS}")

    @property
    def variable_rate(self) -> bool:
        return self.kind.startswith("vbr-")

    @property
    def num_models(self) -> int:
        return len(self.widths)

    def model_index(self, level: int) -> int:
        """Index into :attr:`widths` of the model for an integer ``level`` (always 0 for variable-rate models)."""
        return 0 if self.variable_rate else level - 1


def per_quality(*groups: tuple[range, tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    """Widths for consecutive quality ranges, e.g. ``per_quality((range(1, 6), (128, 192)), (range(6, 9), ...))``."""
    out: list[tuple[int, ...]] = []
    for qualities, widths in groups:
        if qualities.start != len(out) + 1:
            raise ValueError("quality ranges must be consecutive and start at 1")
        out.extend([widths] * len(qualities))
    return tuple(out)


def compressai(module: str = "compressai") -> Any:
    """Imports a compressai module. compressai applies ``torch.jit.script`` at import, which recent torch deprecates
    with a FutureWarning per use; that is compressai's to change, so it is silenced here, for this import only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        return importlib.import_module(module)


def build_model(arch: Arch, index: int) -> nn.Module:
    """A randomly initialised CompressAI model (deterministic: seeded, without touching the global RNG)."""
    cm = compressai("compressai.models")

    cls = getattr(cm, arch.cls_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(index)
        return cls(*arch.widths[index], **dict(arch.init_kwargs))


@dataclass
class Output:
    """Decoded image (not yet clamped or cropped) and coded bits per sample, float32."""

    x_hat: Tensor
    bits: Tensor


def _bits(likelihood: Tensor) -> Tensor:
    return -torch.log2(likelihood).flatten(1).sum(1)


def _bottleneck(eb: nn.Module, z: Tensor, quantize: bool, qs: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Entropy bottleneck in eval mode: ``round(z - median) + median`` and its per-sample bits.

    ``qs`` (``(B,)``) is the per-sample quantization step of a variable-rate bottleneck.
    Values are laid out as CompressAI does (channels first, then everything else) so that results match bit for bit.
    """
    b, c = z.shape[:2]
    values = z.transpose(0, 1).reshape(c, 1, -1)
    medians = eb._get_medians()
    rnd = ste_round if quantize else torch.round
    if qs is None:
        z_hat = rnd(values - medians) + medians
        lik, _, _ = eb._likelihood(z_hat)
    else:
        step = qs.view(1, b, 1).expand(1, b, values.shape[-1] // b).reshape(1, 1, -1)
        z_hat = rnd((values - medians) / step) * step + medians
        lik, _, _ = eb._likelihood_variable(z_hat, qs=step)
    if eb.use_likelihood_bound:
        lik = eb.likelihood_lower_bound(lik)
    shape = (c, b, *z.shape[2:])
    z_hat = z_hat.reshape(shape).transpose(0, 1)
    lik = lik.reshape(shape).transpose(0, 1)
    return z_hat, _bits(lik)


def _gaussian_bits(gc: nn.Module, y_hat: Tensor, scales: Tensor, means: Tensor | None = None) -> Tensor:
    lik = gc._likelihood(y_hat, scales, means)
    if gc.use_likelihood_bound:
        lik = gc.likelihood_lower_bound(lik)
    return _bits(lik)


def _quant_offsets(model: nn.Module, scales: Tensor, gain: Tensor, q_abs: Tensor) -> Tensor:
    """CompressAI's learned reconstruction offsets of the variable-rate models (zero where the symbol is zero)."""
    q_stdev = model.gaussian_conditional.lower_bound_scale(scales * gain).unsqueeze(-1)
    stdev_and_gain = torch.cat((q_stdev, gain.unsqueeze(-1).expand_as(q_stdev)), dim=-1)
    offsets = -model.QuantABCD(stdev_and_gain).squeeze(-1)
    return torch.where(q_abs < 0.0001, torch.zeros_like(offsets), offsets)


def _vbr_quantize(model: nn.Module, y: Tensor, scales: Tensor, means: Tensor | None, gain: Tensor,
                  rnd) -> tuple[Tensor, Tensor]:
    """Variable-rate quantization of ``y`` at step ``1 / gain`` with offsets: ``(y_hat, symbols)``."""
    rescale = 1.0 / gain
    y_zm = y if means is None else y - means
    if model.no_quantoffset:
        q = rnd(y_zm * gain)
        y_hat = q * rescale
    else:
        y_zm_sc = y_zm * gain
        signs = torch.sign(y_zm_sc).detach()
        q_abs = rnd(torch.abs(y_zm_sc))
        y_hat = signs * (q_abs + _quant_offsets(model, scales, gain, q_abs)) * rescale
        q = signs * q_abs
    if means is not None:
        y_hat = y_hat + means
    return y_hat, q


def forward_model(model: nn.Module, kind: str, x: Tensor, *, gain: Tensor | None = None, quantize_grad: bool = True,
                  autocast: bool = False) -> Output:
    """Runs one frozen CompressAI model as a codec: eval-mode values, straight-through rounding.

    Args:
        model: a CompressAI model in eval mode.
        kind: its forward family (see :class:`Arch`).
        x: input padded to the model's multiple.
        gain: ``(B,)`` per-sample gain (CompressAI's ``inputscale``) of a variable-rate model.
        quantize_grad: straight-through rounding (otherwise plain rounding).
        autocast: run the transforms under autocast (the entropy models always run in float32).

    Returns:
        :class:`Output` with ``x_hat`` ``(B, 3, H, W)`` float32 and ``bits`` ``(B,)`` float32.

    Shape:
        - x: ``(B, 3, H, W)`` float32 in [0, 1], H and W multiples of the model's padding.
    """
    rnd = ste_round if quantize_grad else torch.round
    device_type = x.device.type
    amp_dtype = torch.bfloat16
    if autocast and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        amp_dtype = torch.float16

    def net(module: nn.Module, t: Tensor) -> Tensor:
        if not autocast:
            return module(t)
        with torch.autocast(device_type, dtype=amp_dtype):
            return module(t).float()

    # Whatever the caller's autocast, the rate model and rounding run in float32.
    with torch.autocast(device_type, enabled=False):
        y = net(model.g_a, x)
        if kind == FACTORIZED:
            y_hat, bits = _bottleneck(model.entropy_bottleneck, y, quantize_grad)
            return Output(net(model.g_s, y_hat), bits)

        gc = model.gaussian_conditional
        if kind in (HYPERPRIOR, VBR_HYPERPRIOR):
            z = net(model.h_a, torch.abs(y))
        else:
            z = net(model.h_a, y)
        b = y.shape[0]

        if kind in (HYPERPRIOR, MEAN_SCALE, AUTOREGRESSIVE):
            z_hat, z_bits = _bottleneck(model.entropy_bottleneck, z, quantize_grad)
            params = net(model.h_s, z_hat)
            if kind == HYPERPRIOR:
                y_hat = rnd(y)
                y_bits = _gaussian_bits(gc, y_hat, params)
            elif kind == MEAN_SCALE:
                scales, means = params.chunk(2, 1)
                y_hat = rnd(y - means) + means
                y_bits = _gaussian_bits(gc, y_hat, scales, means)
            else:
                # CompressAI's parallel forward: the context model sees round(y); the rate uses the predicted means.
                y_hat = rnd(y)
                ctx = net(model.context_prediction, y_hat)
                scales, means = net(model.entropy_parameters, torch.cat((params, ctx), dim=1)).chunk(2, 1)
                y_bits = _gaussian_bits(gc, rnd(y - means) + means, scales, means)
            return Output(net(model.g_s, y_hat), y_bits + z_bits)

        if gain is None:
            raise ValueError("variable-rate models need a per-sample gain")
        g = gain.to(torch.float32).view(b, 1, 1, 1)
        if getattr(model, "vr_entbttlnck", False):
            z_step = model.lower_bound_zqstep(model.gayn2zqstep(1.0 / gain.to(torch.float32).view(b, 1))).view(b)
            z_hat, z_bits = _bottleneck(model.entropy_bottleneck, z, quantize_grad, qs=z_step)
        else:
            z_hat, z_bits = _bottleneck(model.entropy_bottleneck, z, quantize_grad)
        params = net(model.h_s, z_hat)
        if kind == VBR_HYPERPRIOR:
            scales = params
            y_hat, _ = _vbr_quantize(model, y, scales, None, g, rnd)
            y_bits = _gaussian_bits(gc, rnd(y * g), scales * g)
        elif kind == VBR_MEAN_SCALE:
            scales, means = params.chunk(2, 1)
            y_hat, _ = _vbr_quantize(model, y, scales, means, g, rnd)
            y_bits = _gaussian_bits(gc, rnd(y * g - means * g) + means * g, scales * g, means * g)
        else:
            # Parallel approximation of CompressAI's sequential variable-rate context model: the context sees
            # round(y * g) / g (as the fixed-rate parallel forward does), then y is quantized around the means.
            ctx = net(model.context_prediction, rnd(y * g) * (1.0 / g))
            if model.scl2ctx:
                ctx = ctx + model.scale_to_context(gain.to(torch.float32).view(b, 1)).view(b, -1, 1, 1)
            scales, means = net(model.entropy_parameters, torch.cat((params, ctx), dim=1)).chunk(2, 1)
            y_hat, q = _vbr_quantize(model, y, scales, means, g, rnd)
            y_bits = _gaussian_bits(gc, q, scales * g)
        return Output(net(model.g_s, y_hat), y_bits + z_bits)
