"""The rows of the throughput benchmark: what each row times.

Three kinds of row:

- one row at a fixed level and one at per-sample bpp targets for every registered codec, generated from its
  registry entry (level range, channels, devices, grad modes); a codec that is not usable here or fails to build is
  reported as not run, with the reason;
- variants of augcomp's JPEG (backends, gradients, compilation) that the performance goals compare;
- the JPEG implementations people already use (torchvision, kornia, Pillow, simplejpeg).
"""

from __future__ import annotations

import fnmatch
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BASELINE",
    "BASELINE_CODEC",
    "BPP_RANGE",
    "Inputs",
    "Prepared",
    "Row",
    "Skip",
    "all_rows",
    "codec_row_keys",
    "codec_rows",
    "fixed_level",
    "select_rows",
]

BASELINE = "tv-v2-jpeg"
BASELINE_CODEC = "jpeg"  # the registered codec that the baseline row implements
BPP_RANGE = (0.3, 2.0)  # per-sample targets of the rate-controlled codec rows, drawn log-uniformly


class Skip(Exception):
    """A row cannot run here (missing package, weights or device); the message says why."""


@dataclass
class Inputs:
    """The shared batch in the forms the rows need."""

    u8: Tensor  # (B, 3, H, W) uint8 on the benchmark device
    u8_cpu: Tensor  # the same batch on the CPU
    f32: Tensor  # float32 in [0, 1] on the benchmark device
    device: torch.device
    quality: int
    bpp: float
    targets: Tensor  # (B,) per-sample bpp targets in BPP_RANGE, on the CPU


@dataclass
class Prepared:
    """What a row's ``make`` may return instead of a bare callable, when it had to run elsewhere."""

    fn: Callable[[], Any]
    device: str
    note: str


@dataclass
class Row:
    """One benchmark row.

    ``make(inputs)`` returns the callable that is timed (or a :class:`Prepared`), or raises :class:`Skip`.
    """

    key: str
    label: str
    group: str
    make: Callable[[Inputs], Callable[[], Any] | Prepared]
    dtype: str = "uint8"
    cpu_only: bool = False
    cuda_only: bool = False
    note: str = ""
    warmup: int = 1  # calls before timing at the least (2 for compiled rows: the first one compiles)
    optional: bool = False  # a failure is reported in the table instead of ending the run


# ---------------------------------------------------------------------------------------------------- codecs


def codec_row_keys(name: str) -> tuple[str, str]:
    """The keys of a codec's fixed-level row and of its bpp-targeted row."""
    return f"codec:{name}", f"codec:{name}:bpp"


def fixed_level(entry: Any) -> float:
    """The level of a codec's fixed-level row: the middle of its level range, a whole number when the range is
    discrete or wide (JPEG and WebP quality 50, neural quality index 4 of 1..8, VBR gain 0.55)."""
    lo, hi = entry.level_range
    middle = (lo + hi) / 2
    return float(round(middle)) if entry.discrete or hi - lo >= 10 else middle


def codec_rows() -> list[Row]:
    """A fixed-level row and a bpp-targeted row for every registered codec, in registry order."""
    from augcomp import codecs

    rows = []
    lo, hi = BPP_RANGE
    for name in codecs.list():
        entry = codecs.entry(name)
        level = fixed_level(entry)
        fixed_key, targeted_key = codec_row_keys(name)
        rows.append(Row(fixed_key, f"{name} {entry.level_name} {level:g}", "codec",
                        functools.partial(_make_codec_call, name, level), optional=True,
                        note=f"{entry.level_name} in {entry.level_range[0]:g}..{entry.level_range[1]:g}"))
        rows.append(Row(targeted_key, f"{name} at {lo:g}-{hi:g} bpp", "codec",
                        functools.partial(_make_codec_call, name, None), optional=True,
                        note="rate control, per-sample targets"))
    return rows


def _make_codec_call(name: str, level: float | None, inp: Inputs) -> Callable[[], Any] | Prepared:
    # Everything the row needs to know comes from the entry: nothing here asks which codec it is.
    from augcomp import codecs
    from augcomp._api import compress
    from augcomp.availability import codec_available

    entry = codecs.entry(name)
    usable, why = codec_available(name)
    if not usable:
        raise Skip(why)
    if 3 not in entry.channels:
        raise Skip(f"takes {'/'.join(map(str, entry.channels))} channels; the batch is RGB")
    if min(inp.u8.shape[-2:]) < entry.min_size:
        raise Skip(f"needs images of at least {entry.min_size} pixels a side")
    grad = "none" if "none" in entry.grad_modes else entry.grad_modes[0]
    try:
        codecs.get(name, grad=grad)  # built now, so that a codec that cannot be built is skipped, not timed
    except Exception as err:  # noqa: BLE001 - a codec still being written must not sink the whole run
        raise Skip(f"cannot be built here ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    native = entry.natively_on(inp.device.type)
    x = inp.u8 if native else inp.u8_cpu
    spec = {"quality": level} if level is not None else {"bpp": inp.targets.to(x.device)}

    def call() -> Any:
        return compress(x, codec=name, grad=grad, **spec)

    if native:
        return call
    return Prepared(call, "cpu", f"computes on {'/'.join(entry.devices)}; timed on a host copy")


# ---------------------------------------------------------------------------------------------------- augcomp JPEG


def _jpeg_rows(quality: int, bpp: float) -> list[Row]:
    # The variants of augcomp's JPEG the performance goals compare; the options are the JPEG codec's own.
    from augcomp._api import compress

    def fixed(inp: Inputs) -> Callable[[], Any]:
        return lambda: compress(inp.u8, codec="jpeg", quality=inp.quality)

    def targeted(inp: Inputs) -> Callable[[], Any]:
        return lambda: compress(inp.u8, codec="jpeg", bpp=inp.bpp)

    def ste(inp: Inputs) -> Callable[[], Any]:
        def step() -> None:
            x = inp.f32.detach().requires_grad_(True)
            compress(x, codec="jpeg", quality=inp.quality, grad="ste").image.sum().backward()

        return step

    def torch_backend(inp: Inputs) -> Callable[[], Any]:
        return lambda: compress(inp.u8, codec="jpeg", quality=inp.quality, backend="torch")

    def compiled(inp: Inputs) -> Callable[[], Any]:
        return lambda: compress(inp.u8, codec="jpeg", quality=inp.quality, backend="torch", compile=True)

    def ste_compiled(inp: Inputs) -> Callable[[], Any]:
        def step() -> None:
            x = inp.f32.detach().requires_grad_(True)
            out = compress(x, codec="jpeg", quality=inp.quality, grad="ste", backend="torch", compile=True)
            out.image.sum().backward()

        return step

    def three_sizes(inp: Inputs) -> Callable[[], Any]:
        # Detection and segmentation batches change size; after the first call (which compiles on CUDA), any
        # recompilation is an error, so this row fails instead of timing compiles.
        h, w = inp.u8.shape[-2:]
        crops = [inp.u8, inp.u8[..., : h * 7 // 8, : w * 3 // 4].contiguous(),
                 inp.u8[..., : h * 3 // 4, : w * 5 // 8 + 3].contiguous()]
        calls = []

        def call() -> None:
            with torch.compiler.set_stance("fail_on_recompile" if calls else "default"):
                for crop in crops:
                    compress(crop, codec="jpeg", quality=inp.quality)
            calls.append(1)

        return call

    return [
        Row("augcomp-jpeg", f"augcomp JPEG q{quality}", "augcomp", fixed, note="backend=auto (compiled on CUDA)"),
        Row("augcomp-bpp", f"augcomp JPEG bpp={bpp:g}", "augcomp", targeted, note="backend=auto, rate control"),
        Row("augcomp-ste", f"augcomp JPEG q{quality} fwd+bwd", "augcomp", ste, dtype="float32",
            note="grad=ste, requires_grad input, sum().backward()"),
        Row("augcomp-torch", f"augcomp JPEG q{quality} torch backend", "augcomp", torch_backend,
            note="backend=torch (the GPU path)"),
        Row("augcomp-sizes", f"augcomp JPEG q{quality} at three sizes, no recompilation", "augcomp",
            three_sizes, cuda_only=True, warmup=2, optional=True,
            note="the batch, then two crops of it; fails if a new size recompiles"),
        # Compiling the tensor path takes minutes on a small CPU, so these rows run on GPUs only.
        Row("augcomp-compiled", f"augcomp JPEG q{quality} compiled", "augcomp", compiled, cuda_only=True, warmup=2,
            optional=True, note="backend=torch, compile=True"),
        Row("augcomp-ste-compiled", f"augcomp JPEG q{quality} fwd+bwd compiled", "augcomp", ste_compiled,
            dtype="float32", cuda_only=True, warmup=2, optional=True, note="grad=ste, backend=torch, compile=True"),
    ]


# ---------------------------------------------------------------------------------------------------- peers


def _peer_rows(quality: int) -> list[Row]:
    def v2_jpeg(inp: Inputs) -> Callable[[], Any] | Prepared:
        from torchvision.transforms import v2

        transform = v2.JPEG(quality=inp.quality)
        if inp.device.type != "cpu":
            try:
                transform(inp.u8[:1])
            except Exception as err:  # noqa: BLE001 - fall back to the CPU coder where the device has none
                x = inp.u8_cpu
                return Prepared(lambda: transform(x), "cpu", f"{type(err).__name__} on {inp.device.type}")
        return lambda: transform(inp.u8)

    def tv_io_cpu(inp: Inputs) -> Callable[[], Any]:
        from torchvision.io import decode_jpeg, encode_jpeg

        images = list(inp.u8_cpu)
        return lambda: torch.stack(decode_jpeg(encode_jpeg(images, quality=inp.quality)))

    def tv_io_cuda(inp: Inputs) -> Callable[[], Any]:
        from torchvision.io import decode_jpeg, encode_jpeg

        images = list(inp.u8)

        def roundtrip() -> Tensor:
            # nvJPEG encodes on the GPU, but decode_jpeg reads its bytes from host memory.
            data = [d.cpu() for d in encode_jpeg(images, quality=inp.quality)]
            return torch.stack(decode_jpeg(data, device=inp.device))

        return roundtrip

    def kornia_random(inp: Inputs, backward: bool) -> Callable[[], Any]:
        augmentation = _kornia().augmentation.RandomJPEG(jpeg_quality=float(inp.quality), p=1.0)
        return _forward_maybe_backward(lambda x: augmentation(x), inp.f32, backward)

    def kornia_diff(inp: Inputs, backward: bool) -> Callable[[], Any]:
        codec = _kornia().enhance.jpeg_codec_differentiable
        q = torch.tensor([float(inp.quality)], device=inp.device)
        return _forward_maybe_backward(lambda x: codec(x, q), inp.f32, backward)

    def pil(inp: Inputs) -> Callable[[], Any]:
        from PIL import Image

        def roundtrip() -> Tensor:
            arrays = inp.u8_cpu.permute(0, 2, 3, 1).numpy()
            out = []
            for a in arrays:
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="JPEG", quality=inp.quality, subsampling=2)
                buf.seek(0)
                with Image.open(buf) as im:
                    out.append(np.asarray(im.convert("RGB")))
            return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)

        return roundtrip

    def simplejpeg_row(inp: Inputs) -> Callable[[], Any]:
        try:
            import simplejpeg
        except ImportError as err:
            raise Skip("simplejpeg is not installed: pip install 'augcomp[bench]'") from err

        def roundtrip() -> Tensor:
            arrays = inp.u8_cpu.permute(0, 2, 3, 1).contiguous().numpy()
            out = [simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(a, quality=inp.quality, colorsubsampling="420"))
                   for a in arrays]
            return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)

        return roundtrip

    return [
        Row(BASELINE, f"torchvision v2.JPEG q{quality}", "peer", v2_jpeg, note="libjpeg-turbo, one image at a time"),
        Row("tv-io-cpu", "torchvision encode_jpeg/decode_jpeg (list)", "peer", tv_io_cpu, cpu_only=True,
            note="libjpeg-turbo"),
        Row("tv-io-nvjpeg", "torchvision encode_jpeg/decode_jpeg (nvJPEG)", "peer", tv_io_cuda, cuda_only=True,
            note="CUDA tensors in, device='cuda' decode"),
        Row("kornia-random-jpeg", "kornia RandomJPEG", "peer", lambda i: kornia_random(i, False), dtype="float32"),
        Row("kornia-random-jpeg-fwdbwd", "kornia RandomJPEG fwd+bwd", "peer", lambda i: kornia_random(i, True),
            dtype="float32"),
        Row("kornia-jpeg-diff", "kornia jpeg_codec_differentiable", "peer", lambda i: kornia_diff(i, False),
            dtype="float32"),
        Row("kornia-jpeg-diff-fwdbwd", "kornia jpeg_codec_differentiable fwd+bwd", "peer",
            lambda i: kornia_diff(i, True), dtype="float32"),
        Row("pil", "Pillow save/open", "peer", pil, cpu_only=True, note="one image at a time, libjpeg-turbo"),
        Row("simplejpeg", "simplejpeg encode/decode", "peer", simplejpeg_row, cpu_only=True,
            note="one image at a time, libjpeg-turbo"),
    ]


def _kornia() -> Any:
    try:
        import kornia
        import kornia.augmentation  # noqa: F401
        import kornia.enhance  # noqa: F401
    except ImportError as err:
        raise Skip("kornia is not installed: pip install 'augcomp[bench]'") from err
    return kornia


def _forward_maybe_backward(fn: Callable[[Tensor], Tensor], x: Tensor, backward: bool) -> Callable[[], Any]:
    if not backward:
        def forward() -> Tensor:
            with torch.no_grad():
                return fn(x)

        return forward

    def step() -> None:
        fn(x.detach().requires_grad_(True)).sum().backward()

    return step


# ---------------------------------------------------------------------------------------------------- selection


def all_rows(quality: int, bpp: float) -> list[Row]:
    """Every row the benchmark knows: augcomp's JPEG variants, one pair per registered codec, then the peers."""
    return [*_jpeg_rows(quality, bpp), *codec_rows(), *_peer_rows(quality)]


def select_rows(rows: list[Row], patterns: str | None) -> list[Row]:
    """Rows whose key matches one of the comma-separated glob ``patterns`` (all rows if None), plus the baseline.

    Raises:
        ValueError: a pattern matches no row (names the known keys).
    """
    if not patterns:
        return rows
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    keys = [r.key for r in rows]
    for p in wanted:
        if not fnmatch.filter(keys, p):
            raise ValueError(f"--rows pattern {p!r} matches no row; rows: {', '.join(keys)}")
    return [r for r in rows if r.key == BASELINE or any(fnmatch.fnmatch(r.key, p) for p in wanted)]
