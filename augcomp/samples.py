"""Sample photographs for benchmarks, examples and tests: the natural images scikit-image bundles.

Nothing is downloaded. scikit-image is a development dependency (``pip install 'augcomp[dev]'``); it is imported on
first use, so importing this module costs nothing, and its absence raises an :class:`ImportError` that says what to
install.

::

    from augcomp.samples import natural_crops

    x = natural_crops(8, 224)   # (8, 3, 224, 224) uint8 crops of real photographs
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["NATURAL_IMAGES", "ade20k_folder", "natural_crops", "natural_images"]

# The photographs scikit-image bundles (no download needed); test patterns and micrographs are left out.
NATURAL_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def natural_images(names: Sequence[str] = NATURAL_IMAGES) -> dict[str, np.ndarray]:
    """The bundled scikit-image photographs that exist in this installation, as ``(H, W, 3)`` uint8 arrays.

    Images missing from the installation are left out silently (``motorcycle_left`` is a file, not a loader, in
    some scikit-image versions); nothing is ever downloaded. The arrays are read-only and shared between calls.

    Raises:
        ImportError: scikit-image is not installed (the message says how to install it).
        RuntimeError: none of ``names`` could be loaded.
    """
    return dict(_load_natural(tuple(names)))


def natural_crops(batch: int, size: int | tuple[int, int], seed: int = 0) -> Tensor:
    """``batch`` random crops of the bundled photographs, cycling through them, as ``(B, 3, H, W)`` uint8.

    An image smaller than the crop is first upscaled (bicubic) so that it fits. The same ``seed`` gives the same
    crops.
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


def _skimage_data() -> Any:
    try:
        import skimage.data
    except ImportError as err:
        raise ImportError("the sample images come from scikit-image, which is not installed: "
                          "pip install 'augcomp[dev]' (or pip install scikit-image)") from err
    return skimage.data


@functools.lru_cache(maxsize=4)
def _load_natural(names: tuple[str, ...]) -> tuple[tuple[str, np.ndarray], ...]:
    from PIL import Image

    data = _skimage_data()
    found: dict[str, np.ndarray] = {}
    for name in names:
        array = None
        loader = getattr(data, name, None)
        if loader is not None:
            try:
                array = np.asarray(loader())
            except Exception:  # noqa: BLE001 - some loaders need an optional download helper; skip those images
                array = None
        if array is None:
            for ext in (".png", ".jpg"):
                path = Path(data.data_dir) / f"{name}{ext}"
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
        raise RuntimeError(f"none of scikit-image's bundled photographs {', '.join(names)} could be loaded")
    return tuple(found.items())


def ade20k_folder(root: str | Path, train: int = 16, val: int = 8, size: int = 512, seed: int = 0) -> Path:
    """Writes an ADE20K-layout dataset of photographs: ``root/ADEChallengeData2016/{images,annotations}/
    {training,validation}``, JPEG images (quality 95) of ``size`` x ``size`` cut from the bundled photographs, and
    PNG masks whose classes (1..4, 0 unlabelled at the border) follow the image's brightness quartiles, so a model
    can learn them. Returns ``root``.
    """
    from PIL import Image

    base = Path(root) / "ADEChallengeData2016"
    rng = np.random.default_rng(seed)
    photos = list(natural_images().values())
    for i in range(train + val):
        split, j = ("training", i) if i < train else ("validation", i - train)
        name = f"ADE_{split[:5]}_{j:08d}"
        for kind in ("images", "annotations"):
            (base / kind / split).mkdir(parents=True, exist_ok=True)
        # A random zoom, crop and flip of a photograph: every image differs, even from the few bundled photographs.
        photo = Image.fromarray(photos[i % len(photos)])
        zoom = size / min(photo.size) * rng.uniform(1.05, 1.8)
        photo = photo.resize((math.ceil(photo.size[0] * zoom), math.ceil(photo.size[1] * zoom)), Image.BICUBIC)
        left = int(rng.integers(0, photo.size[0] - size + 1))
        top = int(rng.integers(0, photo.size[1] - size + 1))
        pixels = np.asarray(photo.crop((left, top, left + size, top + size)))
        pixels = np.ascontiguousarray(pixels[:, ::-1]) if rng.random() < 0.5 else pixels
        Image.fromarray(pixels).save(base / "images" / split / f"{name}.jpg", quality=95)
        luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        mask = (np.searchsorted(np.quantile(luma, [0.25, 0.5, 0.75]), luma) + 1).astype(np.uint8)
        mask[:4], mask[-4:], mask[:, :4], mask[:, -4:] = 0, 0, 0, 0
        Image.fromarray(mask).save(base / "annotations" / split / f"{name}.png")
    return Path(root)
