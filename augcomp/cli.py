"""The ``augcomp`` command: list codecs, compress an image, compare codecs side by side, benchmark.

::

    augcomp codecs
    augcomp compress photo.png --codec jpeg --bpp 0.2 -o photo_0.2bpp.png
    augcomp compress photo.png --codec jpeg --quality 50 -o photo_q50.png
    augcomp grid photo.png --codecs jpeg,augcomp-tiny --bpp 0.1,0.3,1.0 -o grid.png
    augcomp bench --batch 64 --size 224

Errors the user can fix (a missing file, an unknown codec, a bad number: every :class:`~augcomp.AugcompError`) print
one line on stderr and return a non-zero status; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor

from augcomp._errors import DISK_ERRNOS, AugcompError

__all__ = ["LABEL_HEIGHT", "PAD", "build_parser", "codec_rows", "grid_size", "main", "render_grid"]

# Grid layout, in pixels: the gap around tiles and the height of the caption strip above each tile.
PAD = 6
LABEL_HEIGHT = 34
_FONT_SIZE = 12


class CLIError(AugcompError):
    """A user error: reported as one line on stderr, with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block and exit; the command reports one line instead.
        raise CLIError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------------- parsing


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CLIError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CLIError(f"{what}: {text!r} is not a finite number")
    return value


def _bpp_value(text: str, what: str = "--bpp") -> float:
    value = _number(text, what)
    if value <= 0:
        raise CLIError(f"{what} must be > 0 bits per pixel, got {text}")
    return value


def _bpp_list(text: str) -> list[float]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise CLIError(f"--bpp: expected a comma-separated list of numbers such as 0.1,0.3,1.0, got {text!r}")
    return [_bpp_value(t, f"--bpp list {text!r}") for t in items]


def _name_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise CLIError(f"--codecs: expected a comma-separated list of codec names such as jpeg,augcomp-tiny, "
                       f"got {text!r}")
    return items


def _check_codec(name: str) -> Any:
    from augcomp import codecs

    try:
        return codecs.entry(name)
    except ValueError as err:
        raise CLIError(str(err)) from None


def _check_level(entry: Any, value: float) -> float:
    lo, hi = entry.level_range
    if not lo <= value <= hi:
        raise CLIError(f"--quality ({entry.level_name} of {entry.name}) must be in [{lo:g}, {hi:g}], got {value:g}")
    return value


def _load_image(path: str, gray_ok: bool) -> Tensor:
    """An image file as ``(1, C, H, W)`` uint8 (C = 3, or 1 for grayscale files when ``gray_ok``)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise CLIError(f"no such file: {path}")
    if not p.is_file():
        raise CLIError(f"not a file: {path}")
    try:
        with Image.open(p) as im:
            gray = im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
            if im.mode.startswith("I"):
                # 16-bit (or 32-bit integer) samples: scale to 8 bits instead of letting convert() clip them at 255.
                wide = np.asarray(im).astype(np.float64)
                peak = float(wide.max()) if wide.size else 0.0
                top = 65535.0 if im.mode.startswith("I;16") else 255.0 if peak <= 255 else max(65535.0, peak)
                array = np.clip(np.round(wide * (255.0 / top)), 0, 255).astype(np.uint8)
                if not gray_ok:
                    array = np.repeat(array[..., None], 3, axis=2)
            else:
                array = np.asarray(im.convert("L" if gray and gray_ok else "RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise CLIError(f"cannot read {path} as an image ({err})") from None
    x = torch.from_numpy(array.copy())
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    return x[None].contiguous()


def _check_output(path: str, entry: Any = None) -> bool:
    """Caught before any compression: an extension nothing can write, or another codec's own format (which would
    code the decoded pixels a second time). Returns whether ``path`` gets the codec's own coded file."""
    from PIL import Image

    from augcomp import codecs

    suffix = Path(path).suffix.lower()
    own_file = entry is not None and suffix in entry.suffixes
    owner = next((n for n in codecs.list() if suffix in codecs.entry(n).suffixes), None)
    if entry is not None and owner is not None and not own_file:
        own = f"{entry.suffixes[0]} for {entry.name}'s own file, or " if entry.suffixes else ""
        raise CLIError(f"-o {path}: {suffix} is the file format of codec {owner!r}, which would code the "
                       f"decoded image again; use {own}.png for the decoded pixels")
    if not own_file and suffix not in Image.registered_extensions():
        raise CLIError(f"cannot write {path}: unknown image extension {suffix or '(none)'!r}; use .png for example")
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise CLIError(f"-o {path}: is a folder; give a file name such as {Path(path) / 'decoded.png'}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CLIError(f"-o {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"-o {path}: cannot write in {folder} (permission denied); choose another output path")
    return own_file


def _save_file(data: bytes, path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        p.write_bytes(data)
    except OSError as err:
        raise CLIError(f"cannot write -o {path} ({err})") from None


def _save_image(x: Tensor, path: str) -> None:
    """Writes a ``(C, H, W)`` uint8 tensor; the format follows the file extension."""
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    array = x.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    try:
        image.save(p)
    except (ValueError, OSError) as err:
        raise CLIError(f"cannot write {path} ({err})") from None


def _codec_options(args: argparse.Namespace, entry: Any) -> dict[str, Any]:
    # Each option goes to the codecs whose builder takes it; the entry says which, not the codec's name.
    accepted = entry.accepted
    options: dict[str, Any] = {}
    for option in ("backend", "weights"):
        value = getattr(args, option, None)
        if not value:
            continue
        if option not in accepted:
            raise CLIError(f"--{option} is not an option of {entry.name} (its options: {', '.join(accepted)})")
        options[option] = value
    return options


# ---------------------------------------------------------------------------------------------------- commands


def codec_rows() -> list[dict[str, Any]]:
    """One dictionary per registered codec: its capabilities and whether it is usable here (no network)."""
    from augcomp import codecs
    from augcomp.availability import codec_usability

    rows = []
    for name in codecs.list():
        e = codecs.entry(name)
        usable, detail = codec_usability(name)
        available = usable == "yes"
        lo, hi = e.level_range
        rows.append({"name": name, "family": e.family, "level_name": e.level_name, "level_range": [lo, hi],
                     "levels": "discrete" if e.discrete else "continuous",
                     "rate_increases_with_level": e.rate_increases_with_level, "channels": list(e.channels),
                     "devices": list(e.devices), "grad_modes": list(e.grad_modes), "reference": e.reference,
                     "extra": e.extra, "requires": list(e.requires), "weights": e.weights, "min_size": e.min_size,
                     "available": available, "usable": usable, "detail": detail, "description": e.description})
    return rows


def cmd_codecs(args: argparse.Namespace) -> int:
    """Prints every registered codec: its level, channels, devices, gradients, reference, extra, and whether it is
    usable here (and if not, why and what to install)."""
    rows = codec_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("codec", "level", "range", "kind", "channels", "devices", "grad", "extra", "reference", "usable",
              "detail")
    table = [(r["name"], r["level_name"], f"{r['level_range'][0]:g}..{r['level_range'][1]:g}", r["levels"],
              ",".join(map(str, r["channels"])), ",".join(r["devices"]), ",".join(r["grad_modes"]),
              r["extra"] or "core", r["reference"] or "-", r["usable"], r["detail"])
             for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in (header, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    """Compresses one image at a quality or a target bpp, prints bpp, level and PSNR, writes the decoded image."""
    from augcomp import functional

    entry = _check_codec(args.codec)
    options = _codec_options(args, entry)
    if args.bpp is not None:
        spec = {"bpp": _bpp_value(args.bpp)}
    else:
        spec = {"quality": _check_level(entry, _number(args.quality, "--quality"))}
    coded_file = _check_output(args.output, entry) if args.output else False
    x = _load_image(args.image, gray_ok=1 in entry.channels)
    out = functional.compress(x, codec=args.codec, grad="none", files=coded_file, **spec, **options)
    score = functional.psnr(x, out.image)[0].item()
    target = f" (target {spec['bpp']:g})" if "bpp" in spec else ""
    dest = ""
    if args.output and coded_file:
        from augcomp import codecs

        data = codecs.get(args.codec, **options).file_for(out.files[0], Path(args.output).suffix)
        _save_file(data, args.output)
        extra = len(data) - out.bits[0].item() / 8
        dest = f", wrote {args.output} ({len(data)} bytes: the payload plus {extra:g} bytes of container and headers)"
    elif args.output:
        _save_image(out.image[0], args.output)
        dest = f", wrote {args.output}"
    print(f"{args.codec}: {out.bpp[0].item():.4f} bpp{target}, level {out.level[0].item():.4g}, "
          f"PSNR {score:.2f} dB, {x.shape[-1]}x{x.shape[-2]}{dest}")
    if out.missed is not None and bool(out.missed[0]):
        got = out.bpp[0].item()
        print(f"{args.codec}: missed the target: {spec['bpp']:g} bpp lies {out.reasons[0]} the rates {args.codec} "
              f"reaches for this image; the nearest is {got:.4f} bpp ({got / spec['bpp'] - 1:+.0%})")
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    """Writes a labelled grid: one row per codec, one column per target bpp."""
    from augcomp import functional

    names = _name_list(args.codecs)
    entries = [_check_codec(n) for n in names]
    targets = _bpp_list(args.bpp)
    if args.zoom < 1:
        raise CLIError(f"--zoom must be an integer >= 1, got {args.zoom}")
    _check_output(args.output)
    x = _load_image(args.image, gray_ok=False)
    if args.crop is not None:
        x = _center_crop(x, args.crop)
    batch = x.expand(len(targets), -1, -1, -1).contiguous()
    bpp = torch.tensor(targets, dtype=torch.float32)
    tiles: list[list[tuple[Tensor, list[str]]]] = []
    for name, entry in zip(names, entries, strict=True):
        out = functional.compress(batch, codec=name, bpp=bpp, grad="none", **_codec_options(args, entry))
        scores = functional.psnr(batch, out.image)
        row = []
        for i, t in enumerate(targets):
            row.append((out.image[i], [f"{name} @ {t:g} bpp",
                                       f"got {out.bpp[i].item():.3f} bpp, {scores[i].item():.2f} dB"]))
        if args.original:
            row.insert(0, (x[0], ["original", f"{8 * x.shape[1]} bpp"]))
        tiles.append(row)
    grid = render_grid(tiles, args.zoom)
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        grid.save(path)
    except (ValueError, OSError) as err:
        raise CLIError(f"cannot write {args.output} ({err})") from None
    print(f"wrote {args.output}: {len(names)} codecs x {len(targets)} targets, {grid.width}x{grid.height} pixels")
    return 0


def _center_crop(x: Tensor, size: int) -> Tensor:
    if size < 1:
        raise CLIError(f"--crop must be a positive integer, got {size}")
    h, w = x.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw].contiguous()


def grid_size(rows: int, cols: int, height: int, width: int, zoom: int = 1) -> tuple[int, int]:
    """``(width, height)`` in pixels of a grid of ``rows x cols`` tiles of ``height x width`` at ``zoom``."""
    return (cols * width * zoom + (cols + 1) * PAD, rows * (height * zoom + LABEL_HEIGHT) + (rows + 1) * PAD)


def render_grid(tiles: list[list[tuple[Tensor, list[str]]]], zoom: int = 1) -> Any:
    """Lays out ``(C, H, W)`` uint8 tiles with a caption strip above each; returns a PIL image."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = tiles[0][0][0].shape[-2:]
    size = grid_size(len(tiles), len(tiles[0]), h, w, zoom)
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=_FONT_SIZE)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    for r, row in enumerate(tiles):
        for c, (image, lines) in enumerate(row):
            left = PAD + c * (w * zoom + PAD)
            top = PAD + r * (h * zoom + LABEL_HEIGHT + PAD)
            array = image.expand(3, -1, -1) if image.shape[0] == 1 else image
            tile = Image.fromarray(array.permute(1, 2, 0).numpy())
            if zoom > 1:
                tile = tile.resize((w * zoom, h * zoom), Image.Resampling.NEAREST)
            canvas.paste(tile, (left, top + LABEL_HEIGHT))
            for i, line in enumerate(lines):
                draw.text((left + 2, top + 2 + i * (_FONT_SIZE + 3)), line, fill="black", font=font)
    return canvas


def cmd_bench(argv: Sequence[str]) -> int:
    """Runs the throughput benchmark (``augcomp bench --help`` lists its options)."""
    from augcomp import bench

    return bench.main(list(argv), prog="augcomp bench", parser_class=_Parser)


# ---------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The ``augcomp`` argument parser."""
    from augcomp import __version__

    parser = _Parser(prog="augcomp", description="Image compression as a training augmentation.")
    parser.add_argument("--version", action="version", version=f"augcomp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("codecs", help="list the registered codecs, what they can do and whether they are usable here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_codecs)

    p = sub.add_parser("compress", help="compress one image; print bpp, level and PSNR; write the decoded image")
    p.add_argument("image", help="input image (any format Pillow reads)")
    p.add_argument("--codec", default="jpeg", help="codec name (see 'augcomp codecs'; default jpeg)")
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--bpp", help="target bits per pixel (> 0)")
    rate.add_argument("--quality", help="the codec's level: JPEG quality in [1, 100]; 'augcomp codecs' lists "
                                        "each codec's level and range")
    p.add_argument("-o", "--output", help="where to write the decoded image (format from the extension)")
    p.add_argument("--backend", choices=("auto", "torch", "native"), help="JPEG backend (default auto)")
    p.add_argument("--weights", help="codecs with weights: a checkpoint file or folder")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("grid", help="a labelled grid of codecs (rows) by target bpp (columns)")
    p.add_argument("image", help="input image (any format Pillow reads)")
    p.add_argument("--codecs", default="jpeg", help="comma-separated codec names (default jpeg)")
    p.add_argument("--bpp", default="0.1,0.3,1.0", help="comma-separated targets in bpp (default 0.1,0.3,1.0)")
    p.add_argument("-o", "--output", required=True, help="where to write the grid (PNG recommended)")
    p.add_argument("--crop", type=int, default=None, help="centre crop of this side before compressing")
    p.add_argument("--zoom", type=int, default=1, help="nearest-neighbour magnification of the tiles (default 1)")
    p.add_argument("--original", action="store_true", help="prepend a column with the original image")
    p.add_argument("--backend", choices=("auto", "torch", "native"), help="JPEG backend (default auto)")
    p.add_argument("--weights", help="codecs with weights: a checkpoint file or folder")
    p.set_defaults(func=cmd_grid)

    sub.add_parser("bench", help="throughput benchmark (see 'augcomp bench --help')", add_help=False)
    from augcomp._cli_store import add_store_commands

    add_store_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``augcomp`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Importing compressai scripts a few functions, which recent torch warns about; it is not the user's concern.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    try:
        if argv and argv[0] == "bench":
            # The benchmark owns its options; they are parsed by its own parser.
            return cmd_bench(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CLIError as err:
        return _fail(str(err), 2)
    except SystemExit as done:
        if isinstance(done, AugcompError):
            # A recipe parser's usage error (precompute reads a recipe's options); its code is "error: ...".
            return _fail(str(done.code).removeprefix("error: "), 2)
        return done.code if isinstance(done.code, int) else 0  # --help and --version
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except AugcompError as err:
        # Library errors (weights not found, values out of range) already say what to do; show them, not a trace.
        return _fail(str(err), 1)
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        return _fail(f"{err.strerror or err}: {err.filename}" if err.filename else str(err), 1)


def _fail(message: str, status: int) -> int:
    message = " ".join(message.split())
    print(f"augcomp: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
