"""``LibraryCodec``: the base of codecs computed by an external library (libjpeg-turbo, libwebp, libavif, ...).

The library encodes and decodes one image at a time; images of a batch run in a thread pool (these libraries
release the GIL while they code). Gradients go straight through the codec (identity), bits come from the real
bitstream, and rate control keeps the bytes of the best candidate so that only one decode runs per sample. A tensor
on an accelerator is copied to the host and back.

A new library codec is one subclass that writes :meth:`LibraryCodec.encode`, :meth:`LibraryCodec.decode` and
:meth:`LibraryCodec.payload_bits`, plus one :func:`~augcomp.codecs.registry.register` call whose entry declares
``accepted=LIBRARY_OPTIONS`` (and the subclass's own options).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from augcomp._errors import ArgumentError
from augcomp.codecs._containers import curve_prior
from augcomp.codecs.base import Codec
from augcomp.codecs.registry import CodecEntry
from augcomp.rate import DEFAULT_TOL, search

__all__ = ["LIBRARY_OPTIONS", "LibraryCodec", "default_threads", "map_images"]

# The options LibraryCodec itself takes; a codec's entry declares these plus its own (CodecEntry.accepted).
LIBRARY_OPTIONS = ("grad", "include_header", "threads", "tol")

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def default_threads() -> int:
    """Threads for one batch: ``AUGCOMP_THREADS`` if set, else the cores this process may use, or 1 inside a
    DataLoader worker (the workers already run in parallel); process pools of augcomp set the variable to 1."""
    if os.environ.get("AUGCOMP_THREADS", "").strip():
        return max(1, int(os.environ["AUGCOMP_THREADS"]))
    if torch.utils.data.get_worker_info() is not None:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_images(fn: Callable[[int], Any], count: int, threads: int | None = None) -> list[Any]:
    """``[fn(0), ..., fn(count - 1)]``, spread over a shared thread pool of ``threads`` workers."""
    threads = default_threads() if threads is None else threads
    if threads <= 1 or count <= 1:
        return [fn(i) for i in range(count)]
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="augcomp")
    return list(pool.map(fn, range(count)))


def _interleaved(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` to a C-contiguous ``(H, W, C)``, the layout image libraries take."""
    return np.ascontiguousarray(image.transpose(1, 2, 0))


class LibraryCodec(Codec):
    """A codec whose forward values come from an external library, one image at a time.

    Subclasses write :meth:`encode`, :meth:`decode` and :meth:`payload_bits`; they may override :meth:`rate_prior`
    to warm-start rate control. Encoding is deterministic: the same image and level give the same bytes.

    Args:
        entry: the registry entry.
        grad: ``"ste"`` (identity through the codec) or ``"none"``.
        include_header: count the whole file instead of the coded payload.
        threads: images coded at once (default: :func:`default_threads`).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)``, ``C`` in ``entry.channels``; float in [0, 1] or uint8 in [0, 255], on any device
          (non-CPU tensors are copied to the host and back).
        - level: ``(B,)``.
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    accepts_uint8 = True
    level_step: float | None = None  # candidate levels in rate control are multiples of this (discrete: 1)

    def __init__(self, entry: CodecEntry, grad: str = "ste", include_header: bool = False,
                 threads: int | None = None, tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad)
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ArgumentError(f"threads must be a positive int or None, got {threads!r}")
        if not (isinstance(tol, (int, float)) and 0 < tol < 1):
            raise ArgumentError(f"tol must be a number in (0, 1), got {tol!r}")
        self.include_header = bool(include_header)
        self.threads = threads
        self.tol = float(tol)

    # ------------------------------------------------------------------ what a library codec writes

    def encode(self, image: np.ndarray, level: float) -> bytes:
        """The library's encoding of one ``(H, W, C)`` uint8 C-contiguous image at ``level``."""
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        """The library's decoding of :meth:`encode`'s bytes, as ``(H, W, C)`` or ``(H, W)`` uint8."""
        raise NotImplementedError

    def payload_bits(self, data: bytes) -> int:
        """Bits of the coded payload in ``data``: the file without its container and fixed headers."""
        raise NotImplementedError

    def rate_prior(self, image: np.ndarray, target_bpp: float) -> tuple[float, float]:
        """``(start level, |d log(bits) / d level|)`` for the search: from the entry's ``rate_curve`` where the
        codec has one, else the middle of the range."""
        if self.entry.rate_curve is not None:
            return curve_prior(image, target_bpp, *self.entry.rate_curve)
        lo, hi = self.entry.level_range
        return (lo + hi) / 2, float(np.log(30.0) / (hi - lo))

    def rate_priors(self, images: np.ndarray, target_bpp: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`rate_prior` for a batch, as two ``(B,)`` float32 tensors; override when it vectorises."""
        priors = [self.rate_prior(image, float(t)) for image, t in zip(images, target_bpp.tolist(), strict=True)]
        return torch.tensor(priors, dtype=torch.float32).reshape(-1, 2).unbind(1)

    def to_channels(self, decoded: np.ndarray, channels: int) -> np.ndarray:
        """The decoded ``(H, W, C')`` image with the input's ``channels``; override where the library codes
        grayscale as RGB."""
        return decoded

    # ------------------------------------------------------------------ shared machinery

    def bits(self, data: bytes) -> int:
        """What the codec reports: the payload, or the whole file with ``include_header``."""
        return 8 * len(data) if self.include_header else self.payload_bits(data)

    @staticmethod
    def _planar(x: Tensor) -> np.ndarray:
        # (B, C, H, W) uint8 on the host; each image is laid out as (H, W, C) in the worker threads (in parallel).
        u8 = x if x.dtype == torch.uint8 else (x.detach() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        return u8.to("cpu").numpy()

    def _arrays(self, x: Tensor) -> list[np.ndarray]:
        planar = self._planar(x)
        return map_images(lambda i: _interleaved(planar[i]), len(planar), self.threads)

    def _decode_into(self, out: np.ndarray, i: int, data: bytes) -> None:
        # Runs in the worker threads, so the copy into the (B, C, H, W) batch is spread over them too. numpy copies:
        # decoders often return read-only arrays, which torch.from_numpy warns about.
        decoded = self.to_channels(self.decode(data), out.shape[1])
        np.copyto(out[i], decoded.reshape(out.shape[2], out.shape[3], -1).transpose(2, 0, 1))

    def _finish(self, x: Tensor, out: Tensor, bits: Sequence[int]) -> tuple[Tensor, Tensor]:
        out = out.to(x.device, non_blocking=True)
        bits_t = torch.tensor(list(bits), dtype=torch.float32).to(x.device)
        if x.dtype == torch.uint8:
            return out, bits_t
        image = out.to(torch.float32) / 255.0
        if self.grad == "ste" and torch.is_grad_enabled() and x.requires_grad:
            image = x + (image - x).detach()  # straight through: identity Jacobian
        return image, bits_t

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        image, bits, _ = self._code(x, level, keep=False)
        return image, bits

    def _compress_files(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor, list[bytes]]:
        return self._code(x, level, keep=True)

    def _code(self, x: Tensor, level: Tensor, keep: bool) -> tuple[Tensor, Tensor, list[bytes]]:
        planar = self._planar(x)
        levels = level.tolist()
        out = torch.empty(x.shape, dtype=torch.uint8)
        files: list[bytes] = [b""] * len(levels) if keep else []

        def one(i: int) -> int:
            data = self.encode(_interleaved(planar[i]), levels[i])
            self._decode_into(out.numpy(), i, data)
            if keep:
                files[i] = data
            return self.bits(data)

        image, bits = self._finish(x, out, map_images(one, len(levels), self.threads))
        return image, bits, files

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.search_bits(x, bpp.to(torch.float32) * float(x.shape[-2] * x.shape[-1]))

    def _fit_bpp_files(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor, list[bytes]]:
        return self.search_files(x, bpp.to(torch.float32) * float(x.shape[-2] * x.shape[-1]))

    def decode_file(self, data: bytes, channels: int = 3) -> Tensor:
        decoded = self.to_channels(self.decode(data), channels)
        decoded = decoded.reshape(decoded.shape[0], decoded.shape[1], -1)
        return torch.from_numpy(decoded.transpose(2, 0, 1).copy())  # decoders may return read-only arrays

    def search_bits(self, x: Tensor, target_bits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per sample, the level whose :meth:`bits` are closest to ``target_bits`` (``(B,)`` float32).

        The shared engine :func:`augcomp.rate.search` steps the whole batch at once (the same arithmetic as on an
        accelerator); each step encodes only the samples still searching, in the thread pool. Every encoding is
        kept, so the chosen one is decoded once and nothing is encoded twice.

        Returns:
            ``(image, bits, level)`` as :meth:`fit_bpp`.
        """
        image, bits, level, _ = self.search_files(x, target_bits)
        return image, bits, level

    def search_files(self, x: Tensor, target_bits: Tensor) -> tuple[Tensor, Tensor, Tensor, list[bytes]]:
        """:meth:`search_bits`, plus the chosen file of each sample."""
        arrays = self._arrays(x)
        targets = target_bits.detach().to("cpu", torch.float32)
        start, slope = self.rate_priors(arrays, targets / float(x.shape[-2] * x.shape[-1]))
        coded: list[dict[float, bytes]] = [{} for _ in range(len(arrays))]

        def measure(level: Tensor, active: Tensor) -> Tensor:
            levels, todo = level.tolist(), active.nonzero()[:, 0].tolist()

            def one(k: int) -> None:
                i = todo[k]
                if levels[i] not in coded[i]:
                    coded[i][levels[i]] = self.encode(arrays[i], levels[i])

            map_images(one, len(todo), self.threads)
            searching = set(todo)
            return torch.tensor([float(self.bits(coded[i][levels[i]])) if i in searching else 1.0
                                 for i in range(len(levels))])

        lo, hi = self.entry.level_range
        level, bits = search(measure, targets, lo, hi, discrete=self.entry.discrete, step=self.level_step,
                             increasing=self.entry.rate_increases_with_level, start=start, slope=slope, tol=self.tol,
                             early_stop=True)
        chosen = level.tolist()
        files = [coded[i][chosen[i]] for i in range(len(chosen))]
        out = torch.empty(x.shape, dtype=torch.uint8)
        map_images(lambda i: self._decode_into(out.numpy(), i, files[i]), len(chosen), self.threads)
        image, bits = self._finish(x, out, [int(b) for b in bits.tolist()])
        return image, bits, level.to(x.device), files

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, include_header={self.include_header}, threads={self.threads}"
