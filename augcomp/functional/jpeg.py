"""Baseline JPEG as libjpeg-turbo writes and reads it by default, as batched tensor kernels.

The exact path follows libjpeg step by step: JFIF RGB->YCbCr (jccolor.c), edge replication to whole blocks and
h2v2 downsampling with its alternating bias (jcsample.c, jcprepct.c), islow DCT (jfdctint.c), quantization
(jcdctmgr.c), dummy blocks that complete partial MCUs (jccoefct.c), islow IDCT (jidctint.c), "fancy" triangle
upsampling (jdsample.c) and YCbCr->RGB (jdcolor.c). The smooth path mirrors it in floating point and carries
gradients.

All functions take samples on the [0, 255] scale. Geometry (padding, block grids, MCU order) depends only on
static shapes, so no function here syncs with the host or makes a data-dependent shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from augcomp._errors import ArgumentError
from augcomp.functional._cache import constant_cache
from augcomp.functional.color import rgb_to_ycbcr_float, rgb_to_ycbcr_int, ycbcr_to_rgb_float, ycbcr_to_rgb_int
from augcomp.functional.dct import block_dct, block_idct, blockify, fdct_islow, idct_islow, unblockify
from augcomp.functional.entropy import scan_bits
from augcomp.functional.quant import ZIGZAG, quantize_islow

__all__ = [
    "SUBSAMPLINGS",
    "JPEGLayout",
    "jpeg_layout",
    "jpeg_layout_of",
    "jpeg_analysis",
    "jpeg_quantize",
    "jpeg_synthesis",
    "jpeg_scan_bits",
    "jpeg_roundtrip",
    "jpeg_roundtrip_any_size",
    "jpeg_stream_rate",
    "CHUNK_PIXELS",
    "jpeg_bands",
    "jpeg_stream_banded",
    "jpeg_decode_banded",
    "jpeg_stream",
    "jpeg_stream_bits",
    "jpeg_quantize_stream",
    "stream_tables",
    "jpeg_smooth",
    "straight_through",
]

SUBSAMPLINGS = ("420", "444")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class JPEGLayout:
    """Static geometry of one image size: block grids, MCU grid and scan order.

    Attributes:
        channels, height, width: the image.
        subsampled: 4:2:0 chroma (only with 3 channels).
        grids: per component, ``(rows, cols)`` of real blocks.
        mcu: ``(rows, cols)`` of MCUs.
    """

    channels: int
    height: int
    width: int
    subsampled: bool
    grids: tuple[tuple[int, int], ...]
    mcu: tuple[int, int]

    @property
    def chroma_size(self) -> tuple[int, int]:
        return (_ceil_div(self.height, 2), _ceil_div(self.width, 2)) if self.subsampled else (self.height, self.width)


@functools.lru_cache(maxsize=256)
def jpeg_layout(channels: int, height: int, width: int, subsampling: str = "420") -> JPEGLayout:
    """The :class:`JPEGLayout` for an image size. ``subsampling`` is ``"420"`` or ``"444"`` (ignored for C=1)."""
    if subsampling not in SUBSAMPLINGS:
        raise ArgumentError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
    return _make_layout(channels, height, width, subsampling)


def jpeg_layout_of(samples: Tensor, subsampling: str = "420") -> JPEGLayout:
    """The layout of a ``(B, C, H, W)`` batch, uncached: under ``torch.compile(dynamic=True)`` its sizes stay
    symbolic, so compiled code built on it serves every image size."""
    _, c, h, w = samples.shape
    return _make_layout(c, h, w, subsampling)


def _make_layout(channels: int, height, width, subsampling: str) -> JPEGLayout:
    # Plain arithmetic, so that under torch.compile(dynamic=True) height and width stay symbolic.
    luma = (_ceil_div(height, 8), _ceil_div(width, 8))
    if channels == 1:
        return JPEGLayout(1, height, width, False, (luma,), luma)
    if subsampling == "444":
        return JPEGLayout(3, height, width, False, (luma, luma, luma), luma)
    mcu = (_ceil_div(height, 16), _ceil_div(width, 16))
    return JPEGLayout(3, height, width, True, (luma, mcu, mcu), mcu)


@dataclass(frozen=True)
class _Stream:
    """Static scan-order facts of a layout (all ``(N,)`` int64 on one device)."""

    source: Tensor  # index into the concatenated component blocks; the extra last index is a zero block
    dc_source: Tensor  # the scan index whose DC each block carries (itself, or for a dummy block its donor)
    table_id: Tensor  # 0 luma, 1 chroma
    predecessor: Tensor  # previous block of the same component, -1 if none
    zigzag: Tensor  # natural index of each zigzag position
    per_mcu: int


@constant_cache
def _stream(layout: JPEGLayout, device: torch.device) -> _Stream:
    # Tensor arithmetic on the grid sizes, not Python loops over them, so that under torch.compile(dynamic=True)
    # they stay symbolic: one graph serves every image size.
    i64 = {"dtype": torch.int64, "device": device}
    mh, mw = layout.mcu
    m = torch.arange(mh * mw, **i64)[:, None]  # MCU index, one row per MCU
    if layout.subsampled:
        rows, cols = layout.grids[0]
        luma, chroma = rows * cols, mh * mw
        k = torch.arange(4, **i64)
        y, x = 2 * (m // mw) + k // 2, 2 * (m % mw) + k % 2
        real = (y < rows) & (x < cols)
        first = 6 * m
        # jccoefct.c: a dummy block (past the image's last block row or column) takes the DC of the block before
        # it in the MCU buffer; block 0 of an MCU is always real.
        donors = [first]
        for j in (1, 2, 3):
            donors.append(torch.where(real[:, j : j + 1], first + j, donors[-1]))
        source = torch.cat((torch.where(real, y * cols + x, luma + 2 * chroma), luma + m, luma + chroma + m), 1)
        dc_source = torch.cat((*donors, first + 4, first + 5), 1)
        table_id = torch.tensor([0, 0, 0, 0, 1, 1], **i64).expand_as(source)
        step = torch.tensor([1, 1, 1, 1, 6, 6], **i64)
        step[0] = 3  # luma block 0 follows block 3 of the MCU before
        per_mcu = 6
    else:
        per_mcu = layout.channels
        c = torch.arange(per_mcu, **i64)
        source = c * (mh * mw) + m
        dc_source = per_mcu * m + c
        table_id = (c > 0).to(torch.int64).expand_as(source)
        step = torch.full((per_mcu,), per_mcu, **i64)
    scan = torch.arange(source.numel(), **i64).view_as(source)
    # Previous block of the same component in scan order (DC prediction), -1 for a component's first block.
    predecessor = torch.where(scan >= step, scan - step, -1)
    return _Stream(source.flatten(), dc_source.flatten(), table_id.flatten(), predecessor.flatten(),
                   torch.tensor(ZIGZAG, **i64), per_mcu)


def _replicate_index(size: int, padded: int, device: torch.device) -> Tensor:
    return torch.arange(padded, device=device).clamp_(max=size - 1)


def _pad_replicate(plane: Tensor, rows: int, cols: int) -> Tensor:
    """Edge replication of ``(..., H, W)`` to ``(..., rows, cols)``; works for every dtype."""
    h, w = plane.shape[-2:]
    # No "already whole blocks?" branch: under torch.compile(dynamic=True) it would make a guard that recompiles.
    plane = plane.index_select(-2, _replicate_index(h, rows, plane.device))
    return plane.index_select(-1, _replicate_index(w, cols, plane.device))


def _crop(plane: Tensor, rows: int, cols: int) -> Tensor:
    # Gathers, not a slice: a strided view makes compiled code guard on whether the plane was already whole blocks.
    plane = plane.index_select(-2, torch.arange(rows, device=plane.device))
    return plane.index_select(-1, torch.arange(cols, device=plane.device))


def _downsample_h2v2_int(plane: Tensor) -> Tensor:
    """jcsample.c h2v2_downsample: 2x2 sums plus a bias alternating 1, 2, 1, ... along each row."""
    s = plane[..., 0::2, 0::2] + plane[..., 0::2, 1::2] + plane[..., 1::2, 0::2] + plane[..., 1::2, 1::2]
    bias = 1 + (torch.arange(s.shape[-1], device=s.device) & 1)
    return (s + bias) >> 2


def _component_planes(ycc: Tensor, layout: JPEGLayout, downsample: Callable[[Tensor], Tensor]) -> list[Tensor]:
    """Pads (and downsamples) each component to its whole-block plane, as the encoder's preprocessor does."""
    h = layout.height
    planes = []
    for c, (rows, cols) in enumerate(layout.grids):
        plane = ycc[:, c]
        if layout.subsampled and c > 0:
            plane = _pad_replicate(plane, 2 * _ceil_div(h, 2), cols * 16)
            plane = _pad_replicate(downsample(plane), rows * 8, cols * 8)
        else:
            plane = _pad_replicate(plane, rows * 8, cols * 8)
        planes.append(plane)
    return planes


def jpeg_analysis(x255: Tensor, layout: JPEGLayout) -> list[Tensor]:
    """Colour conversion, padding, downsampling and islow DCT: everything before quantization, exactly.

    Args:
        x255: integer-valued samples in [0, 255].
        layout: from :func:`jpeg_layout`.

    Returns:
        Per component, float64 islow coefficients (8x orthonormal scaling), integer-valued.

    Shape:
        - x255: ``(B, C, H, W)``.
        - returns: list of ``(B, rows, cols, 8, 8)``, one per component.
    """
    samples = x255.to(torch.int32)
    ycc = rgb_to_ycbcr_int(samples) if layout.channels == 3 else samples
    planes = _component_planes(ycc, layout, _downsample_h2v2_int)
    return [fdct_islow(blockify(p.to(torch.float64) - 128.0)) for p in planes]


def jpeg_quantize(coefficients: list[Tensor], tables: Tensor) -> list[Tensor]:
    """Quantizes each component with its table (luma for component 0, chroma for the others).

    Shape:
        - coefficients: list of ``(B, rows, cols, 8, 8)``; tables: ``(B, 2, 8, 8)``.
        - returns: the same shapes, integer-valued float64.
    """
    return [
        quantize_islow(c, tables[:, min(i, 1), None, None]) for i, c in enumerate(coefficients)
    ]


def _fancy_upsample_int(plane: Tensor, size: tuple[int, int]) -> Tensor:
    """jdsample.c h2v2_fancy_upsample on the real ``size`` of a decoded whole-block chroma plane.

    Context rows and columns replicate the first and last real ones (jdmainct.c). Like libjpeg-turbo, planes
    at most two samples wide are upsampled by plain replication instead (jinit_upsampler).
    """
    rows, cols = size
    if cols <= 2:
        return plane[..., :rows, :cols].repeat_interleave(2, -2).repeat_interleave(2, -1)
    i = torch.arange(rows, device=plane.device)
    p = plane.index_select(-2, i)  # not a slice: a strided view makes compiled code guard on the plane's size
    above = p.index_select(-2, (i - 1).clamp_(min=0))
    below = p.index_select(-2, (i + 1).clamp_(max=rows - 1))
    colsum = torch.stack((3 * p + above, 3 * p + below), dim=-2).flatten(-3, -2)  # (..., 2 rows, W)
    j = torch.arange(cols, device=p.device)
    this = colsum.index_select(-1, j)
    left_n = colsum.index_select(-1, (j - 1).clamp_(min=0))
    right_idx = (j + 1).clamp_(max=cols - 1)
    right_n = colsum.index_select(-1, right_idx)
    even = (3 * this + left_n + 8) >> 4
    odd = (3 * this + right_n + 7) >> 4
    return torch.stack((even, odd), dim=-1).flatten(-2)


def jpeg_synthesis(quantized: list[Tensor], tables: Tensor, layout: JPEGLayout) -> Tensor:
    """Dequantization, islow IDCT, fancy upsampling and colour conversion, exactly as libjpeg decodes.

    Shape:
        - quantized: list of ``(B, rows, cols, 8, 8)``; tables: ``(B, 2, 8, 8)``.
        - returns: ``(B, C, H, W)`` float32, integer-valued in [0, 255].
    """
    h, w = layout.height, layout.width
    planes = []
    for c, q in enumerate(quantized):
        plane = unblockify(idct_islow(q * tables[:, min(c, 1), None, None])).to(torch.int32)
        if layout.subsampled and c > 0:
            plane = _fancy_upsample_int(plane, layout.chroma_size)
        planes.append(_crop(plane, h, w))
    out = torch.stack(planes, dim=1)
    if layout.channels == 3:
        out = ycbcr_to_rgb_int(out)
    return out.to(torch.float32)


def jpeg_stream(blocks: list[Tensor], layout: JPEGLayout) -> Tensor:
    """Blocks in scan order (MCU by MCU, components interleaved, dummy blocks included), zigzag inside.

    Dummy blocks (libjpeg's completion of partial 4:2:0 MCUs) come out as zero blocks; their DC is supplied by
    :func:`jpeg_stream_bits` from their donor.

    Shape:
        - blocks: list of ``(B, rows, cols, 8, 8)``, one per component.
        - returns: ``(B, N, 64)`` with ``N = MCUs * blocks per MCU``.
    """
    st = _stream(layout, blocks[0].device)
    batch = blocks[0].shape[0]
    flat = [b.reshape(batch, -1, 64) for b in blocks]
    flat = torch.cat([*flat, torch.zeros_like(flat[0][:, :1])], dim=1)
    return flat.index_select(1, st.source).index_select(-1, st.zigzag)


def stream_tables(tables: Tensor, layout: JPEGLayout) -> Tensor:
    """Quantization tables in zigzag order, one row per block position of an MCU.

    Shape:
        - tables: ``(B, 2, 8, 8)``; returns ``(B, 1, K, 64)`` for a stream viewed as ``(B, MCUs, K, 64)``.
    """
    st = _stream(layout, tables.device)
    zz = tables.flatten(-2).index_select(-1, st.zigzag)
    return zz.index_select(1, st.table_id[: st.per_mcu])[:, None]


def jpeg_stream_bits(stream: Tensor, layout: JPEGLayout, *, stuffing: bool = True, chunk: int | None = None) -> Tensor:
    """Exact scan bits of quantized stream blocks (see :func:`augcomp.functional.entropy.scan_bits`; ``chunk``
    blocks are counted at a time).

    Shape:
        - stream: ``(B, N, 64)`` from :func:`jpeg_stream`, quantized; returns ``(B,)`` float32.
    """
    st = _stream(layout, stream.device)
    dc = stream[..., 0].index_select(1, st.dc_source)
    return scan_bits(dc, stream[..., 1:], st.table_id, st.predecessor, stuffing=stuffing, chunk=chunk)


def jpeg_quantize_stream(stream: Tensor, tables: Tensor, layout: JPEGLayout) -> Tensor:
    """Quantizes unquantized stream blocks; the inner step of rate control.

    Shape:
        - stream: ``(B, N, 64)``; tables ``(B, 2, 8, 8)``; returns ``(B, N, 64)``.
    """
    st = _stream(layout, stream.device)
    batch = stream.shape[0]
    view = stream.view(batch, -1, st.per_mcu, 64)
    return quantize_islow(view, stream_tables(tables, layout).to(stream.dtype)).view_as(stream)


def jpeg_scan_bits(quantized: list[Tensor], layout: JPEGLayout, *, stuffing: bool = True) -> Tensor:
    """Exact bits of the scan libjpeg writes for quantized component blocks.

    Shape:
        - quantized: list of ``(B, rows, cols, 8, 8)``; returns ``(B,)`` float32.
    """
    return jpeg_stream_bits(jpeg_stream(quantized, layout), layout, stuffing=stuffing)


def jpeg_roundtrip(samples: Tensor, tables: Tensor, layout: JPEGLayout) -> tuple[Tensor, Tensor]:
    """Encode, count the scan and decode, exactly as libjpeg does.

    Shape:
        - samples: ``(B, C, H, W)`` integer-valued in [0, 255]; tables ``(B, 2, 8, 8)``.
        - returns: image ``(B, C, H, W)`` float32 in [0, 255] and scan bits ``(B,)`` float32.
    """
    quantized = jpeg_quantize(jpeg_analysis(samples, layout), tables)
    return jpeg_synthesis(quantized, tables, layout), jpeg_scan_bits(quantized, layout)


def jpeg_roundtrip_any_size(samples: Tensor, tables: Tensor, subsampling: str = "420") -> tuple[Tensor, Tensor]:
    """:func:`jpeg_roundtrip` with the layout read off ``samples``' shape.

    Under ``torch.compile(dynamic=True)`` the layout stays symbolic, so one compiled graph serves every image size
    (detection and segmentation batches change size) instead of one compilation per size.

    Shape:
        - samples: ``(B, C, H, W)`` integer-valued in [0, 255]; tables ``(B, 2, 8, 8)``.
        - returns: image ``(B, C, H, W)`` float32 in [0, 255] and scan bits ``(B,)`` float32.
    """
    return jpeg_roundtrip(samples, tables, jpeg_layout_of(samples, subsampling))


def jpeg_stream_rate(stream: Tensor, quality: Tensor, layout: JPEGLayout, *, stuffing: bool = False,
                     chunk: int | None = None) -> Tensor:
    """Scan bits (raw, or exact with ``stuffing``) of an unquantized stream at per-sample qualities: one rate-search
    step.

    With ``chunk``, about that many blocks (whole MCUs) are quantized and counted at a time, so a large image is
    never held quantized whole; the bits are the same.

    Shape:
        - stream: ``(B, N, 64)`` from :func:`jpeg_stream`; quality ``(B,)``; returns ``(B,)`` float32.
    """
    from augcomp.functional.quant import quant_tables

    tables = quant_tables(quality)
    if chunk is None:
        return jpeg_stream_bits(jpeg_quantize_stream(stream, tables, layout), layout, stuffing=stuffing)
    st = _stream(layout, stream.device)
    batch, per = stream.shape[0], st.per_mcu
    zz = stream_tables(tables, layout).to(stream.dtype)  # (B, 1, K, 64)

    def quantized(start: int, stop: int) -> Tensor:  # blocks start:stop, whole MCUs
        return quantize_islow(stream[:, start:stop].reshape(batch, -1, per, 64), zz).reshape(batch, stop - start, 64)

    dc = quantize_islow(stream[..., 0].reshape(batch, -1, per), zz[..., 0]).reshape(batch, -1)
    return scan_bits(dc.index_select(1, st.dc_source), lambda start, stop: quantized(start, stop)[..., 1:],
                     st.table_id, st.predecessor, stuffing=stuffing, chunk=max(1, chunk // per) * per)


CHUNK_PIXELS = 1 << 20  # pixels (over all samples) that one band of a large batch holds on the tensor path


def jpeg_bands(samples: Tensor, subsampling: str = "420", chunk_pixels: int | None = None) -> list[tuple[int, int]]:
    """Row ranges ``[r0, r1)`` that cut a batch into bands of whole MCU rows of about ``chunk_pixels`` pixels
    (default :data:`CHUNK_PIXELS`); one band for a batch under it. Computed from the shape only.

    JPEG codes MCU rows independently except for DC prediction and the bit packing, which
    :func:`jpeg_stream_rate` carries across pieces, so streams of the bands, concatenated, are the stream of the
    whole image (:func:`jpeg_stream_banded`).
    """
    batch, channels, height, width = samples.shape
    budget = CHUNK_PIXELS if chunk_pixels is None else chunk_pixels
    mcu = 16 if channels == 3 and subsampling == "420" else 8
    if batch * height * width <= budget:
        return [(0, height)]
    rows = max(1, budget // max(1, batch * width * mcu)) * mcu
    return [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]


def jpeg_stream_banded(samples: Tensor, subsampling: str, stream_fn: Callable[[Tensor, str], Tensor],
                       bands: list[tuple[int, int]]) -> Tensor:
    """``stream_fn(samples, subsampling)`` (a ``(B, N, 64)`` stream) computed band by band and concatenated: the
    same stream, with the analysis of only one band in memory at a time."""
    if len(bands) == 1:
        return stream_fn(samples, subsampling)
    return torch.cat([stream_fn(samples[:, :, r0:r1], subsampling) for r0, r1 in bands], dim=1)


def jpeg_decode_banded(samples: Tensor, tables: Tensor, subsampling: str, roundtrip_fn: Callable,
                       bands: list[tuple[int, int]]) -> Tensor:
    """The decoded image of :func:`jpeg_roundtrip_any_size` (``roundtrip_fn``), band by band.

    Each band is coded with one MCU row of context above and below (fancy upsampling reads the chroma rows on both
    sides), and only its own rows are kept, so the pixels are those of the whole image.

    Shape:
        - samples: ``(B, C, H, W)`` integer-valued in [0, 255]; tables ``(B, 2, 8, 8)``; returns ``(B, C, H, W)``
          float32.
    """
    if len(bands) == 1:
        return roundtrip_fn(samples, tables, subsampling)[0]
    height = samples.shape[2]
    mcu = 16 if samples.shape[1] == 3 and subsampling == "420" else 8
    out = torch.empty(samples.shape, dtype=torch.float32, device=samples.device)
    for r0, r1 in bands:
        h0, h1 = max(0, r0 - mcu), min(height, r1 + mcu)
        image = roundtrip_fn(samples[:, :, h0:h1], tables, subsampling)[0]
        out[:, :, r0:r1] = image[:, :, r0 - h0 : r1 - h0]
    return out


def _downsample_float(plane: Tensor) -> Tensor:
    return torch.nn.functional.avg_pool2d(plane[:, None], 2)[:, 0]


def _upsample_float(plane: Tensor, size: tuple[int, int]) -> Tensor:
    """Smooth twin of :func:`_fancy_upsample_int`: libjpeg's triangle filter is exactly 2x bilinear
    interpolation with half-pixel centres and clamped edges."""
    rows, cols = size
    p = plane[:, None, :rows, :cols]
    mode = "nearest" if cols <= 2 else "bilinear"
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return torch.nn.functional.interpolate(p, scale_factor=2, mode=mode, **kwargs)[:, 0]


def _triangle_adjoint(g: Tensor, dim: int) -> Tensor:
    """Adjoint of libjpeg's 2x triangle upsampling along ``dim`` (edges clamped): length 2n -> n."""
    dim = dim % g.ndim
    even = g.narrow(dim, 0, g.shape[dim] // 2 * 2)
    n = g.shape[dim] // 2
    e = even.unflatten(dim, (n, 2)).select(dim + 1, 0)
    o = even.unflatten(dim, (n, 2)).select(dim + 1, 1)
    out = 0.75 * (e + o)
    if n > 1:
        out = out + 0.25 * torch.cat((e.narrow(dim, 1, n - 1), torch.zeros_like(e.narrow(dim, 0, 1))), dim)
        out = out + 0.25 * torch.cat((torch.zeros_like(o.narrow(dim, 0, 1)), o.narrow(dim, 0, n - 1)), dim)
    first, last = 0.25 * e.narrow(dim, 0, 1), 0.25 * o.narrow(dim, n - 1, 1)  # the clamped edge taps
    if n == 1:
        return out + first + last
    return torch.cat((out.narrow(dim, 0, 1) + first, out.narrow(dim, 1, n - 2), out.narrow(dim, n - 1, 1) + last), dim)


def _chroma_resample_adjoint(g: Tensor, layout: JPEGLayout) -> Tensor:
    """Adjoint of the straight-through chroma path (replicate-pad, 2x2 average, upsample, crop).

    Shape:
        - g: ``(B, 2, H, W)``; returns the same shape.
    """
    h, w = layout.height, layout.width
    rows, cols = layout.chroma_size
    g = torch.nn.functional.pad(g, (0, 2 * cols - w, 0, 2 * rows - h))  # adjoint of the crop
    if cols <= 2:
        g = torch.nn.functional.avg_pool2d(g, 2) * 4.0  # adjoint of replication
    else:
        g = _triangle_adjoint(_triangle_adjoint(g, -1), -2)
    g = g.repeat_interleave(2, -2).repeat_interleave(2, -1) * 0.25  # adjoint of the 2x2 average
    if 2 * rows > h:  # adjoint of replicating the last row
        g = torch.cat((g[..., : h - 1, :], g[..., h - 1 : h, :] + g[..., h:, :]), dim=-2)
    if 2 * cols > w:
        g = torch.cat((g[..., : w - 1], g[..., w - 1 : w] + g[..., w:]), dim=-1)
    return g


class _StraightThrough(torch.autograd.Function):
    """Returns the exact JPEG; its backward is the straight-through Jacobian, applied directly.

    With every rounding passed straight through, the codec's Jacobian is ``C^-1 diag(1, R, R) C`` for the colour
    transform ``C`` and the chroma resampling ``R``, so the backward needs no forward smooth pass.
    """

    @staticmethod
    def forward(ctx, x255: Tensor, hard: Tensor, layout: JPEGLayout) -> Tensor:  # noqa: D102
        ctx.layout = layout
        return hard

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        layout = ctx.layout
        if not layout.subsampled:
            return grad, None, None
        from augcomp.functional.color import _RGB2YCC, _YCC2RGB

        # Chroma rows of C^-T g, then back through C^T: luma is untouched by the resampling, so skip it.
        r, g, b = grad.unbind(1)
        chroma = torch.stack([_YCC2RGB[0][k] * r + _YCC2RGB[1][k] * g + _YCC2RGB[2][k] * b for k in (1, 2)], 1)
        d1, d2 = (_chroma_resample_adjoint(chroma, layout) - chroma).unbind(1)
        out = torch.stack([grad[:, i] + _RGB2YCC[1][i] * d1 + _RGB2YCC[2][i] * d2 for i in range(3)], 1)
        return out, None, None


def straight_through(x255: Tensor, hard: Tensor, layout: JPEGLayout) -> Tensor:
    """``hard`` in the forward pass; the straight-through JPEG Jacobian in the backward pass.

    Equal in gradient to ``hard + (s - s.detach())`` with ``s = jpeg_smooth(x255, ..., rounding=None)``, at a
    fraction of its cost.

    Shape:
        - x255, hard: ``(B, C, H, W)``; returns ``hard``'s values.
    """
    return _StraightThrough.apply(x255, hard, layout)


def jpeg_smooth(
    x255: Tensor, tables: Tensor, layout: JPEGLayout, rounding: Callable[[Tensor], Tensor] | None
) -> Tensor:
    """The JPEG round trip in floating point, for gradients.

    With ``rounding=None`` quantization is the identity (straight-through), so the DCT pair cancels and only
    colour conversion and chroma resampling remain. Otherwise coefficients pass through ``rounding(c / q) * q``.

    Shape:
        - x255: ``(B, C, H, W)`` float on the [0, 255] scale; tables ``(B, 2, 8, 8)``.
        - returns: ``(B, C, H, W)`` float, unclamped.
    """
    h, w = layout.height, layout.width
    ycc = rgb_to_ycbcr_float(x255) if layout.channels == 3 else x255
    if rounding is None:
        # Quantization is the identity, so the DCT pair cancels: only chroma resampling remains.
        if not layout.subsampled:
            return x255 if layout.channels == 1 else ycbcr_to_rgb_float(ycc)
        rows, cols = layout.chroma_size
        chroma = torch.nn.functional.pad(ycc[:, 1:], (0, 2 * cols - w, 0, 2 * rows - h), mode="replicate")
        chroma = torch.nn.functional.avg_pool2d(chroma, 2)
        mode = {"mode": "nearest"} if cols <= 2 else {"mode": "bilinear", "align_corners": False}
        chroma = torch.nn.functional.interpolate(chroma, scale_factor=2, **mode)[..., :h, :w]
        return ycbcr_to_rgb_float(torch.cat((ycc[:, :1], chroma), dim=1))
    planes = _component_planes(ycc, layout, _downsample_float)
    out = []
    for c, plane in enumerate(planes):
        q = tables[:, min(c, 1), None, None].to(plane.dtype)
        coef = block_dct(blockify(plane - 128.0))
        plane = unblockify(block_idct(rounding(coef / q) * q)) + 128.0
        if layout.subsampled and c > 0:
            plane = _upsample_float(plane, layout.chroma_size)
        out.append(plane[..., :h, :w])
    out = torch.stack(out, dim=1)
    return ycbcr_to_rgb_float(out) if layout.channels == 3 else out
