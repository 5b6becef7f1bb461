"""Throughput benchmark: augcomp's codecs against the JPEG implementations people already use.

Every row compresses and decodes the same batch of natural images (random crops of the photographs scikit-image
ships) in the same process, after a warm-up; a row's time is the median of its timed repeats. On a GPU each
call ends with ``torch.cuda.synchronize()``. Rows that only exist on the CPU (Pillow, simplejpeg, torchvision's CPU
coder) run on a CPU copy of the batch even when the benchmark runs on a GPU; the table says where each row ran.

Run it as ``augcomp bench`` or ``python benchmarks/throughput.py`` (same options)::

    augcomp bench                         # the default: batch 64 of 224x224 crops, on CUDA if present
    augcomp bench --rows 'augcomp-*,kornia-*' --repeats 7
    augcomp bench --quick --out bench-smoke   # seconds, for smoke tests

Speed ratios are ``time of the reference / time of the row``: above 1 means the row is faster.

On a CPU shared with other work, run with ``OMP_WAIT_POLICY=PASSIVE``: OpenMP's workers otherwise spin while waiting
for busy cores, which slows every torch operation (torchvision's JPEG coder included) by erratic factors.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import io
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BASELINE",
    "DEFAULT_OUT",
    "NATURAL_IMAGES",
    "BarResult",
    "Inputs",
    "Prepared",
    "Row",
    "RowResult",
    "Skip",
    "all_rows",
    "benchmark",
    "build_parser",
    "busy_cpu_warning",
    "codec_weights_status",
    "environment",
    "evaluate_bars",
    "main",
    "markdown",
    "natural_crops",
    "natural_images",
    "resolve_device",
    "run",
    "select_rows",
]

# The photographs scikit-image bundles (no download needed); test patterns and micrographs are left out.
NATURAL_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")

BASELINE = "tv-v2-jpeg"
DEFAULT_OUT = "results/bench"


class Skip(Exception):
    """A row cannot run here (missing package, weights or device); the message says why."""


# ---------------------------------------------------------------------------------------------------- inputs


def natural_images(names: Sequence[str] = NATURAL_IMAGES) -> dict[str, np.ndarray]:
    """The bundled scikit-image photographs that exist in this installation, as ``(H, W, 3)`` uint8 arrays.

    Images missing from the installation are left out silently (``motorcycle_left`` is a file, not a loader, in
    some scikit-image versions); nothing is ever downloaded. The arrays are read-only and shared between calls.
    """
    return dict(_load_natural(tuple(names)))


@functools.lru_cache(maxsize=4)
def _load_natural(names: tuple[str, ...]) -> tuple[tuple[str, np.ndarray], ...]:
    import skimage.data
    from PIL import Image

    found: dict[str, np.ndarray] = {}
    for name in names:
        array = None
        loader = getattr(skimage.data, name, None)
        if loader is not None:
            try:
                array = np.asarray(loader())
            except Exception:  # noqa: BLE001 - some loaders need an optional download helper; skip those images
                array = None
        if array is None:
            for ext in (".png", ".jpg"):
                path = Path(skimage.data.data_dir) / f"{name}{ext}"
                if path.is_file():
                    with Image.open(path) as im:
                        array = np.asarray(im.convert("RGB"))
                    break
        if array is None:
            continue
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        array = np.array(array[..., :3], dtype=np.uint8, order="C")
        array.flags.writeable = False
        found[name] = array
    if not found:
        raise RuntimeError("none of scikit-image's bundled photographs could be loaded")
    return tuple(found.items())


def natural_crops(batch: int, size: int | tuple[int, int], seed: int = 0) -> Tensor:
    """``batch`` random crops of the bundled photographs, cycling through them, as ``(B, 3, H, W)`` uint8.

    An image smaller than the crop is first upscaled (bicubic) so that it fits.
    """
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    images = list(natural_images().values())
    crops = []
    for i in range(batch):
        img = images[i % len(images)]
        scale = max(height / img.shape[0], width / img.shape[1])
        if scale > 1:
            new = (math.ceil(img.shape[1] * scale), math.ceil(img.shape[0] * scale))
            img = np.asarray(Image.fromarray(img).resize(new, Image.Resampling.BICUBIC))
        top = int(rng.integers(0, img.shape[0] - height + 1))
        left = int(rng.integers(0, img.shape[1] - width + 1))
        crops.append(torch.from_numpy(np.array(img[top : top + height, left : left + width], copy=True)))
    return torch.stack(crops).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------- weights


def codec_weights_status(name: str) -> tuple[bool, str]:
    """Whether a registered codec's weights are on this machine, without touching the network.

    Returns:
        ``(available, detail)``: detail is a short phrase for listings: ``"built in"``, ``"shipped"``,
        ``"on disk"``, or why the weights are not usable (``"not in the torch hub cache ..."``).
    """
    from augcomp import codecs

    e = codecs.entry(name)
    if e.weights == "none":
        return True, "built in"
    if e.weights == "package":
        from augcomp.codecs import weights as w

        meta = w.package_dir() / f"{name}.json"
        if not meta.is_file():
            return False, f"{meta.name} is not in the package"
        try:
            file = w.package_dir() / json.loads(meta.read_text())["weights_file"]
        except (ValueError, KeyError) as err:
            return False, f"unreadable {meta.name} ({err})"
        return (True, "shipped") if file.is_file() else (False, f"{file.name} is not in the package")
    arch = getattr(e.builder, "arch", None)
    if arch is None or not getattr(arch, "zoo", None):
        return _try_build(name)
    return _zoo_files_status(arch)


def _zoo_files_status(arch: Any) -> tuple[bool, str]:
    from augcomp.codecs import weights as w

    folders = [Path(os.environ[w.ENV_VAR]).expanduser()] if os.environ.get(w.ENV_VAR) else []
    folders.append(w.hub_checkpoint_dir())
    missing = f"not in {w.ENV_VAR} or the torch hub cache"
    # Importing compressai for its URL table takes seconds; with no checkpoint files at all there is no need.
    if not any(f.is_dir() and any(f.glob("*.pth*")) for f in folders):
        return False, missing
    try:
        if arch.variable_rate:
            urls = [w.zoo_url(arch.zoo, "mse", None)]
        else:
            urls = [w.zoo_url(arch.zoo, "mse", q) for q in range(1, arch.num_models + 1)]
    except Exception as err:  # noqa: BLE001 - compressai absent or its URL table changed: report, do not fail
        return False, f"unknown ({type(err).__name__}: {err})"
    names = [u.rsplit("/", 1)[-1] for u in urls]
    present = [n for n in names if any((f / n).is_file() for f in folders)]
    if len(present) == len(names):
        return True, "on disk"
    if present:
        return False, f"only {len(present)}/{len(names)} levels on disk"
    return False, missing


def _try_build(name: str) -> tuple[bool, str]:
    # Builds the lowest level with downloads disabled, so a missing file fails within moments.
    from augcomp import codecs
    from augcomp.codecs import weights as w

    previous = os.environ.get(w.OFFLINE_ENV_VAR)
    os.environ[w.OFFLINE_ENV_VAR] = "1"
    try:
        codec = codecs.get(name, grad="none")
        model = getattr(codec, "model", None)
        if model is not None:
            model(int(codecs.entry(name).level_range[0]))
        return True, "on disk"
    except Exception as err:  # noqa: BLE001 - any failure to load means "not usable here"
        return False, f"not loadable offline ({type(err).__name__})"
    finally:
        if previous is None:
            os.environ.pop(w.OFFLINE_ENV_VAR, None)
        else:
            os.environ[w.OFFLINE_ENV_VAR] = previous


# ---------------------------------------------------------------------------------------------------- rows


@dataclass
class Inputs:
    """The shared batch in the forms the rows need."""

    u8: Tensor  # (B, 3, H, W) uint8 on the benchmark device
    u8_cpu: Tensor  # the same batch on the CPU
    f32: Tensor  # float32 in [0, 1] on the benchmark device
    device: torch.device
    quality: int
    bpp: float


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


def _augcomp_rows(quality: int, bpp: float) -> list[Row]:
    from augcomp import functional

    def fixed(inp: Inputs) -> Callable[[], Any]:
        return lambda: functional.compress(inp.u8, codec="jpeg", quality=inp.quality)

    def targeted(inp: Inputs) -> Callable[[], Any]:
        return lambda: functional.compress(inp.u8, codec="jpeg", bpp=inp.bpp)

    def ste(inp: Inputs) -> Callable[[], Any]:
        def step() -> None:
            x = inp.f32.detach().requires_grad_(True)
            functional.compress(x, codec="jpeg", quality=inp.quality, grad="ste").image.sum().backward()

        return step

    def torch_backend(inp: Inputs) -> Callable[[], Any]:
        return lambda: functional.compress(inp.u8, codec="jpeg", quality=inp.quality, backend="torch")

    def compiled(inp: Inputs) -> Callable[[], Any]:
        return lambda: functional.compress(inp.u8, codec="jpeg", quality=inp.quality, backend="torch", compile=True)

    def ste_compiled(inp: Inputs) -> Callable[[], Any]:
        def step() -> None:
            x = inp.f32.detach().requires_grad_(True)
            out = functional.compress(x, codec="jpeg", quality=inp.quality, grad="ste", backend="torch", compile=True)
            out.image.sum().backward()

        return step

    return [
        Row("augcomp-jpeg", f"augcomp JPEG q{quality}", "augcomp", fixed, note="backend=auto"),
        Row("augcomp-bpp", f"augcomp JPEG bpp={bpp:g}", "augcomp", targeted, note="backend=auto, rate control"),
        Row("augcomp-ste", f"augcomp JPEG q{quality} fwd+bwd", "augcomp", ste, dtype="float32",
            note="grad=ste, requires_grad input, sum().backward()"),
        Row("augcomp-torch", f"augcomp JPEG q{quality} torch backend", "augcomp", torch_backend,
            note="backend=torch (the GPU path)"),
        # Compiling the tensor path takes minutes on a small CPU, so these rows run on GPUs only.
        Row("augcomp-compiled", f"augcomp JPEG q{quality} compiled", "augcomp", compiled, cuda_only=True, warmup=2,
            optional=True, note="backend=torch, compile=True"),
        Row("augcomp-ste-compiled", f"augcomp JPEG q{quality} fwd+bwd compiled", "augcomp", ste_compiled,
            dtype="float32", cuda_only=True, warmup=2, optional=True, note="grad=ste, backend=torch, compile=True"),
    ]


def _neural_rows() -> list[Row]:
    from augcomp import codecs, functional

    rows = []
    for name in codecs.list():
        e = codecs.entry(name)
        if e.family == "jpeg":
            continue
        lo, hi = e.level_range
        level = float(round((lo + hi) / 2)) if e.discrete else (lo + hi) / 2

        def make(inp: Inputs, name: str = name, level: float = level) -> Callable[[], Any]:
            ok, why = codec_weights_status(name)
            if not ok:
                raise Skip(f"weights not available: {why}")
            return lambda: functional.compress(inp.u8, codec=name, quality=level, grad="none")

        rows.append(Row(f"neural:{name}", f"augcomp {name} level {level:g}", "augcomp", make, note="grad=none"))
    return rows


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
            raise Skip("simplejpeg is not installed") from err

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
        raise Skip("kornia is not installed") from err
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


def all_rows(quality: int, bpp: float) -> list[Row]:
    """Every row the benchmark knows, augcomp first."""
    return [*_augcomp_rows(quality, bpp), *_neural_rows(), *_peer_rows(quality)]


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


# ---------------------------------------------------------------------------------------------------- timing


@dataclass
class RowResult:
    """The timing of one row (``ms_per_batch`` is None for a skipped row)."""

    key: str
    label: str
    group: str
    device: str
    dtype: str
    ms_per_batch: float | None = None
    images_per_s: float | None = None
    speed_vs_baseline: float | None = None
    times_ms: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""


@dataclass
class BarResult:
    """A performance goal: ``ratio = time(reference) / time(row)`` must reach ``goal``."""

    name: str
    row: str
    reference: str
    goal: float
    ratio: float | None
    passed: bool | None


def _time(fn: Callable[[], Any], sync: Callable[[], None], repeats: int, budget_s: float, warmup: int,
          tick: Callable[[], None]) -> list[float]:
    # Warm-up first (lazy builds, compilation, thread pools, caching allocators): ``warmup`` calls, and up to
    # three while they are cheap, since small inputs take a few calls to settle. A slow row then gets fewer timed
    # repeats, but never fewer than three, so the median always rejects one outlier.
    last, calls = 0.0, 0
    while calls < warmup or (calls < 3 and last < 1.0):
        start = time.perf_counter()
        fn()
        sync()
        last = time.perf_counter() - start
        calls += 1
    tick()
    count = repeats if last <= 0 else max(min(3, repeats), min(repeats, int(budget_s / last)))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        tick()
    for _ in range(repeats - count):
        tick()
    return times


def run(rows: list[Row], inputs: Inputs, repeats: int, budget_s: float, progress: bool = True) -> list[RowResult]:
    """Times each row on ``inputs`` (rows that cannot run are returned with ``skipped`` set)."""
    from tqdm.auto import tqdm

    device = inputs.device
    cuda_sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = []
    bar = tqdm(total=len(rows) * (1 + repeats), desc="bench", unit="run", disable=not progress, file=sys.stderr)
    for row in rows:
        bar.set_postfix_str(row.key)
        on = torch.device("cpu") if row.cpu_only else device
        res = RowResult(row.key, row.label, row.group, str(on), row.dtype, note=row.note)
        try:
            if row.cuda_only and device.type != "cuda":
                raise Skip("needs a CUDA device")
            fn = row.make(inputs)
            if isinstance(fn, Prepared):
                on, res.device, res.note = torch.device(fn.device), fn.device, f"{res.note}; {fn.note}"
                fn = fn.fn
            sync = (lambda: None) if on.type == "cpu" else cuda_sync
            times = _time(fn, sync, repeats, budget_s, row.warmup, bar.update)
        except Skip as why:
            res.skipped = str(why)
            bar.update(1 + repeats)
        except Exception as err:  # noqa: BLE001 - a peer library's API change must not sink the whole run
            if not (row.optional or row.group == "peer"):
                raise
            res.skipped = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
            bar.update(1 + repeats)
        else:
            median = statistics.median(times)
            res.times_ms = [round(1000 * t, 3) for t in times]
            res.ms_per_batch = 1000 * median
            res.images_per_s = inputs.u8.shape[0] / median
        results.append(res)
    bar.close()
    base = next((r for r in results if r.key == BASELINE and r.ms_per_batch), None)
    for r in results:
        if base is not None and r.ms_per_batch:
            r.speed_vs_baseline = base.ms_per_batch / r.ms_per_batch
    return results


def evaluate_bars(results: list[RowResult], device: torch.device) -> list[BarResult]:
    """The project's performance goals, each a speed ratio between two rows of this run."""
    goals = [
        ("augcomp JPEG >= 1.0x torchvision v2.JPEG", "augcomp-jpeg", BASELINE, 1.0),
        ("bpp-targeted >= 0.5x torchvision v2.JPEG", "augcomp-bpp", BASELINE, 0.5),
        ("differentiable fwd+bwd >= 10x kornia RandomJPEG fwd+bwd", "augcomp-ste", "kornia-random-jpeg-fwdbwd", 10.0),
    ]
    if device.type == "cuda":
        goals += [
            ("differentiable fwd+bwd >= 5x nvJPEG round trip", "augcomp-ste", "tv-io-nvjpeg", 5.0),
            ("compiled fwd+bwd >= 10x kornia RandomJPEG fwd+bwd", "augcomp-ste-compiled",
             "kornia-random-jpeg-fwdbwd", 10.0),
            ("compiled fwd+bwd >= 5x nvJPEG round trip", "augcomp-ste-compiled", "tv-io-nvjpeg", 5.0),
        ]
    times = {r.key: r.ms_per_batch for r in results if r.ms_per_batch}
    bars = []
    for name, row, ref, goal in goals:
        if row in times and ref in times:
            ratio = times[ref] / times[row]
            bars.append(BarResult(name, row, ref, goal, ratio, ratio >= goal))
        else:
            bars.append(BarResult(name, row, ref, goal, None, None))
    return bars


# ---------------------------------------------------------------------------------------------------- reporting


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, threads and hardware, for the JSON report."""
    import PIL
    import torchvision

    import augcomp

    versions = {"augcomp": augcomp.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "pillow": PIL.__version__, "numpy": np.__version__}
    for optional in ("kornia", "simplejpeg"):
        try:
            versions[optional] = __import__(optional).__version__
        except ImportError:
            versions[optional] = None
    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        # OpenMP's spinning workers slow torch ops erratically on a busy CPU; these say how it was configured.
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_cpu_warning(env: dict[str, Any]) -> str | None:
    """A caveat when the CPU was busy and OpenMP's workers spin (the default), else None."""
    load, cores = env.get("load_average"), env.get("cpu_count") or 1
    policy = (env.get("env") or {}).get("OMP_WAIT_POLICY") or ""
    if not load or load[0] <= 0.5 * cores or policy.upper() == "PASSIVE":
        return None
    return (f"Caveat: the CPU was busy (load {load[0]:.1f} on {cores} cores) and OMP_WAIT_POLICY is not PASSIVE; "
            "spinning OpenMP workers can slow torch operations (torchvision's JPEG encoder included) by large, "
            "erratic factors. Rerun with OMP_WAIT_POLICY=PASSIVE on a shared machine.")


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table followed by the goals."""
    env = report["environment"]
    lines = [
        f"Batch {report['batch']} x 3 x {report['size']} x {report['size']} (uint8 natural-image crops), "
        f"device {env['device']} ({env['device_name']}), {env['threads']} torch threads, "
        f"median of up to {report['repeats']} repeats after a warm-up. "
        f"Speed ratio = time of torchvision v2.JPEG / time of the row.",
    ]
    caveat = busy_cpu_warning(env)
    if caveat:
        lines += ["", caveat]
    lines += [
        "",
        "| row | ms/batch | images/s | speed vs v2.JPEG | runs on | input | note |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    skipped = []
    for r in report["rows"]:
        if r["ms_per_batch"] is None:
            skipped.append(f"- {r['label']}: {r['skipped']}")
            continue
        ratio = f"{r['speed_vs_baseline']:.2f}x" if r["speed_vs_baseline"] else "–"
        lines.append(f"| {r['label']} | {r['ms_per_batch']:.1f} | {r['images_per_s']:.1f} | {ratio} | "
                     f"{r['device']} | {r['dtype']} | {r['note']} |")
    if skipped:
        lines += ["", "Not run here:", "", *skipped]
    lines += ["", "| goal | ratio | result |", "|---|---:|---|"]
    for b in report["bars"]:
        ratio = "–" if b["ratio"] is None else f"{b['ratio']:.2f}x"
        verdict = "n/a" if b["passed"] is None else ("PASS" if b["passed"] else "MISS")
        lines.append(f"| {b['name']} | {ratio} | {verdict} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- command


def build_parser(prog: str | None = None,
                 parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options shared by ``augcomp bench`` and ``benchmarks/throughput.py``."""
    p = parser_class(prog=prog, description="Images/s of augcomp's codecs and of other JPEG "
                                "implementations, on the same batch of natural images.")
    p.add_argument("--batch", type=_positive_int, default=64, help="images per batch (default 64)")
    p.add_argument("--size", type=_positive_int, default=224, help="crop side in pixels (default 224)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--repeats", type=_positive_int, default=5, help="timed repeats per row (default 5)")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds a slow row may spend on timed repeats before stopping at three (default 20)")
    p.add_argument("--rows", default=None,
                   help="comma-separated row keys or globs, e.g. 'augcomp-*,kornia-*' (the baseline always runs)")
    p.add_argument("--quality", type=_quality, default=50, help="JPEG quality of the fixed-quality rows (default 50)")
    p.add_argument("--bpp", type=_positive_float, default=0.5, help="target of the bpp row (default 0.5)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests: batch 4, 64x64, 2 repeats")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the row keys and exit")
    return p


def _checked(parse, ok, expected: str):
    """An argparse type: ``parse`` the text, then require ``ok(value)``; errors name what was expected."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_positive_float = _checked(float, lambda v: v > 0 and math.isfinite(v), "a number > 0")
_quality = _checked(int, lambda v: 1 <= v <= 100, "an integer quality in [1, 100]")


def resolve_device(name: str | None) -> torch.device:
    """The benchmark device; ``ValueError`` for CUDA without a GPU or an unknown name."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown --device {name!r} ({err})") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    return device


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the benchmark for parsed ``args``, writes ``throughput.md`` and ``throughput.json``, returns the report.

    Raises:
        ValueError: an unusable ``--device`` or a ``--rows`` pattern that matches nothing (before any timing).
    """
    if args.quick:
        args.batch, args.size, args.repeats = min(args.batch, 4), min(args.size, 64), min(args.repeats, 2)
    device = resolve_device(args.device)
    rows = select_rows(all_rows(args.quality, args.bpp), args.rows)
    if args.threads:
        torch.set_num_threads(args.threads)
    u8_cpu = natural_crops(args.batch, args.size, args.seed)
    u8 = u8_cpu.to(device)
    inputs = Inputs(u8=u8, u8_cpu=u8_cpu, f32=u8.to(torch.float32) / 255.0, device=device, quality=args.quality,
                    bpp=args.bpp)
    results = run(rows, inputs, args.repeats, args.budget, progress=not args.no_progress)
    # The load is read after the run: it then covers the minutes the timings were taken in.
    report = {
        "batch": args.batch,
        "size": args.size,
        "dtype": "uint8",
        "quality": args.quality,
        "bpp": args.bpp,
        "repeats": args.repeats,
        "images": list(natural_images()),
        "environment": environment(device),
        "rows": [asdict(r) for r in results],
        "bars": [asdict(b) for b in evaluate_bars(results, device)],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    (out / "throughput.md").write_text(text)
    (out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text, end="")
    print(f"wrote {out / 'throughput.md'} and {out / 'throughput.json'}")
    return report


def main(argv: Sequence[str] | None = None, prog: str | None = None,
         parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """Command-line entry point; returns the exit status. Usage errors go through ``parser.error``."""
    parser = build_parser(prog, parser_class)
    args = parser.parse_args(argv)
    if args.list:
        for r in all_rows(args.quality, args.bpp):
            print(f"{r.key:28s} {r.label}")
        return 0
    try:
        resolve_device(args.device)
        select_rows(all_rows(args.quality, args.bpp), args.rows)
    except ValueError as err:
        parser.error(str(err))
    benchmark(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
