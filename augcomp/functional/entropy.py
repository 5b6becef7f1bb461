"""Exact bit counting of a baseline JPEG scan with the standard (Annex K) Huffman tables.

The count is what libjpeg writes between the SOS header and EOI with ``optimize_coding=FALSE``: DC DPCM per
component in MCU order, AC run-lengths with ZRL and EOB, magnitude bits, the final byte padded with 1-bits, and
a stuffed zero byte after every 0xFF byte. Stuffing depends on the actual bytes, so the scan is packed on the
device into 32-bit words with a scatter-add (no host sync, static shapes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from augcomp.functional._cache import constant_cache

__all__ = ["HUFFMAN_TABLES", "huffman_code_table", "scan_bits", "jfif_header_bits"]

# (BITS[1..16], HUFFVAL) for DC luma, AC luma, DC chroma, AC chroma (ITU T.81 Annex K.3).
HUFFMAN_TABLES = {
    "dc_luma": ((0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0), bytes(range(12))),
    "dc_chroma": ((0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0), bytes(range(12))),
    "ac_luma": (
        (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125),
        bytes.fromhex(
            "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a"
            "3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a929394"
            "95969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8"
            "e9eaf1f2f3f4f5f6f7f8f9fa"
        ),
    ),
    "ac_chroma": (
        (0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119),
        bytes.fromhex(
            "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728"
            "292a35363738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92"
            "939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7"
            "e8e9eaf2f3f4f5f6f7f8f9fa"
        ),
    ),
}


def huffman_code_table(bits: tuple[int, ...], values: bytes) -> tuple[list[int], list[int]]:
    """Canonical Huffman codes (ITU T.81 Annex C) as ``(codes[256], lengths[256])``; unused symbols have length 0."""
    codes, lengths = [0] * 256, [0] * 256
    code, k = 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]], lengths[values[k]] = code, length
            code += 1
            k += 1
        code <<= 1
    return codes, lengths


@constant_cache
def _tables(device: torch.device) -> dict[str, Tensor]:
    """Lookup tensors indexed ``[table_id, symbol]`` with table_id 0 = luma, 1 = chroma."""
    out: dict[str, list] = {"dc_code": [], "dc_len": [], "ac_code": [], "ac_len": [], "zrl_val": [], "zrl_len": []}
    for kind in ("luma", "chroma"):
        dc_code, dc_len = huffman_code_table(*HUFFMAN_TABLES[f"dc_{kind}"])
        ac_code, ac_len = huffman_code_table(*HUFFMAN_TABLES[f"ac_{kind}"])
        out["dc_code"].append(dc_code[:16])
        out["dc_len"].append(dc_len[:16])
        out["ac_code"].append(ac_code)
        out["ac_len"].append(ac_len)
        zl, zc = ac_len[0xF0], ac_code[0xF0]
        # n ZRL codes back to back, n = 0..3 (a block holds at most 63 zeros, so at most 3 ZRLs).
        out["zrl_val"].append([sum(zc << (zl * i) for i in range(n)) for n in range(4)])
        out["zrl_len"].append([zl * n for n in range(4)])
    return {k: torch.tensor(v, dtype=torch.int64).to(device) for k, v in out.items()}


def _bit_length(v: Tensor) -> Tensor:
    """Number of bits of ``|v|`` (JPEG's magnitude category), for integer-valued tensors."""
    return torch.frexp(v.to(torch.float32)).exponent.to(torch.int64)


def scan_bits(
    dc: Tensor, ac: Tensor, table_id: Tensor, predecessor: Tensor, *, stuffing: bool = True,
    chunk: int | None = None,
) -> Tensor:
    """Exact length in bits of the entropy-coded scan of each sample.

    Args:
        dc: quantized DC coefficients of the blocks in scan order (MCU order, components interleaved).
        ac: quantized AC coefficients of the same blocks, in zigzag order; or a function ``ac(start, stop)`` that
            returns those of blocks ``start:stop`` (so that a large scan is never held quantized whole).
        table_id: per block, 0 for the luma Huffman tables and 1 for the chroma ones.
        predecessor: per block, the scan index of the previous block of the same component (DC prediction),
            or -1 for the first block of a component.
        stuffing: count the final padding and a stuffed zero byte after each 0xFF byte; without it the result
            is the raw bit total (cheaper; used inside rate searches, where stuffing's < 1% does not matter).
        chunk: blocks counted at once (default: all). The scan is packed piece by piece, carrying the bit offset
            and the last partial word from one piece to the next, so the count is the same for every ``chunk``
            while the memory held is bounded by it. Pieces are cut from shapes only.

    Returns:
        ``(B,)`` float32 bits: ``8 * scan bytes`` with ``stuffing``, else the unpadded raw bit count.

    Shape:
        - dc: ``(B, N)``; ac: ``(B, N, 63)``; table_id and predecessor: ``(N,)`` int64.
    """
    n = dc.shape[1]
    zero = torch.zeros((), dtype=torch.int64, device=dc.device)
    prev_dc = torch.where(predecessor >= 0, dc.index_select(1, predecessor.clamp_min(0)), zero.to(dc.dtype))
    diff = dc - prev_dc
    batch = dc.shape[0]
    offset = torch.zeros(batch, dtype=torch.int64, device=dc.device)  # bits written so far
    word = torch.zeros(batch, dtype=torch.int64, device=dc.device)  # the last, partial, 32-bit word
    ff = torch.zeros(batch, dtype=torch.int64, device=dc.device)  # 0xFF bytes in the words completed
    if chunk is None:
        # No slicing and no loop over a size: under torch.compile(dynamic=True) nothing guards on the block count.
        offset, word, ff = _count(diff, ac(0, n) if callable(ac) else ac, table_id, offset, word, ff,
                                  stuffing=stuffing, last=True)
    else:
        get_ac = ac if callable(ac) else (lambda start, stop: ac[:, start:stop])
        step = max(1, int(chunk))
        starts = list(range(0, n, step)) or [0]
        for start in starts:
            stop = min(n, start + step)
            offset, word, ff = _count(diff[:, start:stop], get_ac(start, stop), table_id[start:stop], offset, word,
                                      ff, stuffing=stuffing, last=start == starts[-1])
    if not stuffing:
        return offset.to(torch.float32)
    return (offset // 8 + ff) * 8.0


def _count(diff: Tensor, ac: Tensor, table_id: Tensor, offset: Tensor, carry: Tensor, ff: Tensor, *,
           stuffing: bool, last: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One piece of :func:`scan_bits`: the bits of blocks ``diff``/``ac`` written after ``offset`` bits whose last
    partial word is ``carry``. Returns the new ``(offset, carry, ff)``; with ``last`` the final byte is padded and
    ``offset`` includes the padding."""
    t = _tables(diff.device)
    n = diff.shape[1]
    zero = torch.zeros((), dtype=torch.int64, device=diff.device)
    dc_cat = _bit_length(diff)
    dc_len = t["dc_len"][table_id, dc_cat] + dc_cat
    # Zero run before each non-zero AC coefficient: distance to the previous non-zero (or to the DC).
    nonzero = ac != 0
    pos = torch.arange(1, 64, device=diff.device, dtype=torch.int32)
    last_nz = torch.cummax(torch.where(nonzero, pos, 0), dim=-1).values
    prev = torch.nn.functional.pad(last_nz[..., :-1], (1, 0))
    run = (pos - prev - 1).to(torch.int64)
    size = _bit_length(ac)
    symbol = ((run & 15) << 4) + size + (table_id[:, None] << 8)
    n_zrl = torch.where(nonzero, run >> 4, zero)
    sym_len = torch.where(nonzero, t["ac_len"].view(-1)[symbol] + size, zero)
    zrl_index = n_zrl + (table_id[:, None] << 2)
    zrl_len = t["zrl_len"].view(-1)[zrl_index]
    has_eob = last_nz[..., -1] < 63
    eob_len = torch.where(has_eob, t["ac_len"][table_id, 0], zero)
    raw = dc_len.sum(1) + (sym_len + zrl_len).sum((1, 2)) + eob_len.sum(1)
    if not stuffing:
        return offset + raw, carry, ff

    def mag_bits(v: Tensor, cat: Tensor) -> Tensor:
        vi = v.to(torch.int64)
        return torch.where(vi < 0, vi + (1 << cat) - 1, vi)

    batch = diff.shape[0]
    dc_val = (t["dc_code"][table_id, dc_cat] << dc_cat) | mag_bits(diff, dc_cat)
    sym_val = torch.where(nonzero, (t["ac_code"].view(-1)[symbol] << size) | mag_bits(ac, size), zero)
    zrl_val = t["zrl_val"].view(-1)[zrl_index]
    eob_val = torch.where(has_eob, t["ac_code"][table_id, 0], zero)
    # Stream order inside a block: DC, then (ZRLs, symbol) for each AC position, then EOB.
    lengths = torch.cat(
        (dc_len[..., None], torch.stack((zrl_len, sym_len), -1).flatten(-2), eob_len[..., None]), -1
    ).flatten(1)
    values = torch.cat(
        (dc_val[..., None], torch.stack((zrl_val, sym_val), -1).flatten(-2), eob_val[..., None]), -1
    ).flatten(1)
    end = offset + raw
    if last:
        # The final byte is padded with 1-bits; treat the padding as one more token.
        pad = (-end) % 8
        lengths = torch.cat((lengths, pad[:, None]), 1)
        values = torch.cat((values, ((1 << pad) - 1)[:, None]), 1)
        end = end + pad
    base = offset >> 5  # the word this piece starts in, which the carried partial word already fills in part
    offsets = (offset - (base << 5))[:, None] + torch.cumsum(lengths, 1) - lengths
    # Each token is at most 33 bits, so it touches at most two 32-bit words of the packed scan.
    max_bits_per_block = 22 + 3 * 16 + 63 * 26 + 16
    words = (n * max_bits_per_block + 8 + 32) // 32 + 2
    word = offsets >> 5
    shift = offsets & 31
    placed = values << (64 - shift - lengths).clamp(max=63)  # empty tokens carry value 0
    hi = (placed >> 32) & 0xFFFFFFFF
    lo = placed & 0xFFFFFFFF
    rows = (torch.arange(batch, device=diff.device) * words)[:, None]
    packed = torch.zeros(batch * words, dtype=torch.int64, device=diff.device)
    index = torch.cat(((rows + word).flatten(), (rows + word + 1).flatten()))
    packed.scatter_add_(0, index, torch.cat((hi.flatten(), lo.flatten())))
    packed = packed.view(batch, words)
    packed[:, 0] += carry
    # Words wholly written are counted now; the partial last one is carried into the next piece.
    tail = ((end >> 5) - base)[:, None]
    whole = torch.arange(words, device=diff.device)[None] < (tail + 1 if last else tail)
    shifts = 24 - 8 * torch.arange(4, device=diff.device)
    is_ff = ((packed[..., None] >> shifts) & 0xFF) == 0xFF
    ff = ff + (is_ff & whole[..., None]).sum((1, 2))
    carry = packed.gather(1, tail.clamp(max=words - 1))[:, 0]
    return end, carry, ff


def jfif_header_bits(channels: int) -> int:
    """Bits of everything libjpeg writes around the scan with default settings (SOI, JFIF APP0, DQT, SOF0, DHT,
    SOS, EOI)."""
    dqt = 69 * (1 if channels == 1 else 2)
    dht = 33 + 183 if channels == 1 else 2 * (33 + 183)
    sof = 8 + 2 + 3 * channels
    sos = 6 + 2 * channels + 2
    return 8 * (2 + 18 + dqt + sof + dht + sos + 2)
