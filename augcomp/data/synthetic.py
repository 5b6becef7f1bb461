"""Synthetic scenes: one generator that gives class labels, boxes and masks, deterministic per seed.

Each scene is a 1/f textured background with a few textured objects of random shape, scale and colour, drawn with
occlusion. An object's category is its *fine texture*: stripes at four orientations, a fine checker, a dot grid,
speckle, crosshatch. These textures live at periods of 2-4 pixels and modest contrast, which is exactly the detail
that low-bitrate compression quantizes away. As with real categories, coarse appearance correlates with the
category too, imperfectly: by default 80% of objects have their category's typical hue and the rest a random one, so
colour alone cannot match the texture, which identifies every object. A model trained on clean scenes leans on the
reliable fine texture and breaks when compression removes it; a model finetuned on compressed scenes learns to use
what survives (the coarse colour and the remnants of texture). That is the phenomenon the protocol measures.

Synthetic data is used without geometric augmentation: a horizontal flip would turn 45-degree stripes into
135-degree ones, changing the category.

Pixel-range convention: images are uint8 in [0, 255], channels-first ``(3, H, W)`` tensors.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from augcomp._errors import ArgumentError

__all__ = ["CATEGORIES", "Scene", "SceneConfig", "SyntheticScenes", "make_scene", "PRESETS"]

CATEGORIES: tuple[str, ...] = (
    "stripes-0",
    "stripes-90",
    "stripes-45",
    "stripes-135",
    "checker",
    "dots",
    "speckle",
    "crosshatch",
)


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn.

    Attributes:
        size: image height and width in pixels.
        num_categories: how many of :data:`CATEGORIES` are used (the first ``num_categories``).
        objects: ``(lo, hi)`` number of objects per scene (inclusive); fewer are drawn when they do not fit.
        main_object: whether the first object is a large, central one (classification scenes).
        radius: ``(lo, hi)`` object radius as a fraction of ``size``.
        main_radius: ``(lo, hi)`` radius of the main object as a fraction of ``size``.
        contrast: ``(lo, hi)`` peak-to-mean amplitude of the fine texture, in 8-bit levels.
        period: ``(lo, hi)`` texture period in pixels.
        hue_reliability: probability that an object has its category's typical hue instead of a random one.
        saturation: ``(lo, hi)`` colour saturation of objects.
        min_visible: objects less visible than this fraction after occlusion are not drawn.
    """

    size: int = 64
    num_categories: int = 8
    objects: tuple[int, int] = (1, 3)
    main_object: bool = True
    radius: tuple[float, float] = (0.10, 0.20)
    main_radius: tuple[float, float] = (0.26, 0.40)
    contrast: tuple[float, float] = (14.0, 30.0)
    period: tuple[float, float] = (2.6, 3.6)
    hue_reliability: float = 0.8
    saturation: tuple[float, float] = (0.7, 1.0)
    min_visible: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.num_categories <= len(CATEGORIES):
            raise ArgumentError(f"num_categories must be in [1, {len(CATEGORIES)}], got {self.num_categories}")
        if self.size < 16:
            raise ArgumentError(f"size must be >= 16 pixels, got {self.size}")
        if not 1 <= self.objects[0] <= self.objects[1]:
            raise ArgumentError(f"objects must be a (lo, hi) range with 1 <= lo <= hi, got {self.objects}")


# Presets per task: classification scenes centre one large object; detection and segmentation scenes hold several
# objects at varied scale.
PRESETS: dict[str, SceneConfig] = {
    "cls": SceneConfig(size=64, num_categories=8, objects=(1, 3), main_object=True),
    "det": SceneConfig(size=64, num_categories=4, objects=(1, 3), main_object=False, radius=(0.15, 0.28)),
    "seg": SceneConfig(size=64, num_categories=4, objects=(1, 3), main_object=False, radius=(0.17, 0.32)),
}


@dataclass
class Scene:
    """One synthetic scene and all its ground truth.

    Attributes:
        image: ``(3, H, W)`` uint8 RGB in [0, 255].
        mask: ``(H, W)`` int64 semantic mask: 0 is background, ``c + 1`` is category ``c``.
        instances: ``(H, W)`` int64 instance map: 0 is background, ``i + 1`` is object ``i``.
        boxes: ``(N, 4)`` float32 ``xyxy`` boxes of each object's visible pixels (``x2``/``y2`` exclusive).
        categories: ``(N,)`` int64 category of each object, in ``[0, num_categories)``.
        label: category of the object with the largest visible area (the classification label).
    """

    image: Tensor
    mask: Tensor
    instances: Tensor
    boxes: Tensor
    categories: Tensor
    label: int


def make_scene(seed: int, index: int, config: SceneConfig = SceneConfig()) -> Scene:
    """Draws scene ``index`` of the stream ``seed``; the same arguments always give the same scene.

    Args:
        seed: stream seed (for example, different seeds for training and validation).
        index: scene index within the stream.
        config: drawing parameters.

    Returns:
        A :class:`Scene`.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    s = config.size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    image = _background(rng, s)
    instances = np.zeros((s, s), dtype=np.int64)
    categories: list[int] = []
    full_areas: list[int] = []
    n_objects = int(rng.integers(config.objects[0], config.objects[1] + 1))
    for k in range(n_objects):
        main = config.main_object and k == 0
        for _attempt in range(8):
            shape = _shape(rng, xx, yy, s, config, main)
            trial = np.where(shape, len(categories) + 1, instances)
            if _placement_ok(trial, shape, full_areas, config):
                break
        else:
            continue
        category = int(rng.integers(config.num_categories))
        base = _object_colour(rng, category, config, image, shape)
        texture = _texture(rng, CATEGORIES[category], xx, yy, config)
        shading = _shading(rng, xx, yy)
        obj = base[:, None, None] * shading[None] + texture[None]
        image = np.where(shape[None], obj, image)
        instances = trial
        categories.append(category)
        full_areas.append(int(shape.sum()))
    image_u8 = np.clip(np.round(image), 0, 255).astype(np.uint8)
    mask = np.zeros((s, s), dtype=np.int64)
    boxes = np.zeros((len(categories), 4), dtype=np.float32)
    areas = np.zeros(len(categories), dtype=np.int64)
    for i, c in enumerate(categories):
        sel = instances == i + 1
        ys, xs = np.nonzero(sel)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        mask[sel] = c + 1
        areas[i] = ys.size
    label = categories[int(np.argmax(areas))] if categories else 0
    return Scene(
        image=torch.from_numpy(np.ascontiguousarray(image_u8)),
        mask=torch.from_numpy(mask),
        instances=torch.from_numpy(instances),
        boxes=torch.from_numpy(boxes),
        categories=torch.tensor(categories, dtype=torch.int64),
        label=int(label),
    )


def _placement_ok(trial: np.ndarray, shape: np.ndarray, full_areas: list[int], config: SceneConfig) -> bool:
    """Whether a new object (drawn on top) leaves every earlier object visible enough."""
    area = int(shape.sum())
    if area < 9:
        return False
    visible = np.bincount(trial.ravel(), minlength=len(full_areas) + 2)[1 : len(full_areas) + 1]
    if any(v < config.min_visible * a for v, a in zip(visible, full_areas, strict=True)):
        return False
    # The main object of a classification scene must stay clearly the largest visible object.
    return not (config.main_object and full_areas and area * 1.5 > visible[0])


def _spectrum_noise(rng: np.random.Generator, s: int, channels: int, alpha: float) -> np.ndarray:
    """Noise with a ``1 / f**alpha`` amplitude spectrum, unit standard deviation per channel."""
    fy = np.fft.fftfreq(s)[:, None]
    fx = np.fft.rfftfreq(s)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f**-alpha
    amp[0, 0] = 0.0
    shape = (channels, s, fx.shape[1])
    spec = amp * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    field = np.fft.irfft2(spec, s=(s, s))
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-8
    return field


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    """A natural-looking background: a random colour with 1/f luminance and weaker chroma variation."""
    mean = rng.uniform(60, 200, size=3)
    lum = _spectrum_noise(rng, s, 1, alpha=rng.uniform(1.0, 1.6))[0]
    chroma = _spectrum_noise(rng, s, 3, alpha=1.6)
    return mean[:, None, None] + rng.uniform(12, 30) * lum[None] + 8.0 * chroma


def _shape(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, s: int, config: SceneConfig, main: bool
) -> np.ndarray:
    """A random blob, ellipse or rounded rectangle, as a boolean ``(H, W)`` mask."""
    lo, hi = config.main_radius if main else config.radius
    r = rng.uniform(lo, hi) * s
    if main:
        cx, cy = s / 2 + rng.uniform(-0.12, 0.12) * s, s / 2 + rng.uniform(-0.12, 0.12) * s
    else:
        cx, cy = rng.uniform(0.1, 0.9) * s, rng.uniform(0.1, 0.9) * s
    theta = rng.uniform(0, math.pi)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    aspect = rng.uniform(0.6, 1.0)
    kind = rng.integers(3)
    if kind == 0:  # ellipse
        return (u / r) ** 2 + (v / (r * aspect)) ** 2 <= 1.0
    if kind == 1:  # rounded rectangle (superellipse)
        return np.abs(u / r) ** 4 + np.abs(v / (r * aspect)) ** 4 <= 1.0
    phi = np.arctan2(v, u)  # blob: a radius that wobbles with angle
    rad = np.ones_like(phi)
    for h in (2, 3, 4):
        rad += rng.uniform(0, 0.25 / h * 2) * np.cos(h * phi + rng.uniform(0, 2 * math.pi))
    return np.hypot(u, v) <= r * rad


def _object_colour(
    rng: np.random.Generator, category: int, config: SceneConfig, image: np.ndarray, shape: np.ndarray
) -> np.ndarray:
    """An RGB base colour: the category's typical hue with probability ``hue_reliability``, else a random one.

    The value is kept apart from the local background's so that the object's extent survives coarse compression.
    """
    if rng.random() < config.hue_reliability:
        hue = (category / config.num_categories + rng.normal(0, 0.03)) % 1.0
    else:
        hue = rng.random()
    sat = rng.uniform(*config.saturation)
    under = image[:, shape].mean(axis=1).mean() / 255.0
    val = rng.uniform(0.35, 0.85)
    if abs(val - under) < 0.18:
        val = under + 0.25 if under < 0.55 else under - 0.25
    return 255.0 * np.array(colorsys.hsv_to_rgb(hue, sat, float(np.clip(val, 0.2, 0.95))))


def _shading(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Smooth illumination across an object: a gentle linear gradient."""
    s = xx.shape[0]
    g = rng.uniform(-0.15, 0.15, size=2)
    return 1.0 + g[0] * (xx / s - 0.5) + g[1] * (yy / s - 0.5)


def _texture(
    rng: np.random.Generator, name: str, xx: np.ndarray, yy: np.ndarray, config: SceneConfig
) -> np.ndarray:
    """The category's fine texture, zero-mean, in 8-bit levels, jittered in period, angle, phase and contrast."""
    amp = rng.uniform(*config.contrast)
    period = rng.uniform(*config.period)
    jitter = rng.normal(0, math.radians(6))
    phase = rng.uniform(0, 2 * math.pi, size=2)

    def wave(angle_deg: float, p: float = period, ph: float = phase[0]) -> np.ndarray:
        a = math.radians(angle_deg) + jitter
        return np.cos(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / p + ph)

    if name.startswith("stripes-"):
        t = wave(float(name.split("-")[1]))
    elif name == "checker":
        t = np.sign(wave(0.0) * wave(90.0, ph=phase[1]))
    elif name == "dots":
        d = (wave(0.0, period * 1.3) + 1) * (wave(90.0, period * 1.3, phase[1]) + 1) / 4
        t = 2.0 * (d > 0.55) - 0.6
    elif name == "speckle":
        t = rng.choice([-1.0, 1.0], size=xx.shape)
    elif name == "crosshatch":
        t = 0.5 * (wave(0.0) + wave(90.0, ph=phase[1])) * 1.4
    else:
        raise ValueError(f"unknown texture {name!r}")
    return amp * t


class SyntheticScenes(Dataset):
    """A map-style dataset of synthetic scenes, formatted for one task.

    Samples are dictionaries (see :mod:`augcomp.data`): ``{"image", "label"}`` for ``"cls"``;
    ``{"image", "boxes", "labels", "image_id"}`` for ``"det"`` (labels are ``category + 1``, 0 being background,
    as torchvision detectors expect); ``{"image", "mask"}`` for ``"seg"`` (0 is background, ``category + 1`` an
    object; no pixel is ignored).

    Args:
        task: ``"cls"``, ``"det"`` or ``"seg"``.
        size: number of scenes.
        seed: stream seed; scene ``i`` is ``make_scene(seed, i, config)``.
        config: drawing parameters; defaults to ``PRESETS[task]``.
        cache: keep drawn scenes in memory (drawing one takes about a millisecond).
    """

    def __init__(self, task: str, size: int, seed: int = 0, config: SceneConfig | None = None,
                 cache: bool = True) -> None:
        if task not in PRESETS:
            raise ArgumentError(f"task must be one of {sorted(PRESETS)}, got {task!r}")
        if size < 1:
            raise ArgumentError(f"size must be >= 1, got {size}")
        self.task = task
        self.size = int(size)
        self.seed = int(seed)
        self.config = PRESETS[task] if config is None else config
        self.cache = cache
        self._scenes: dict[int, dict] = {}

    @property
    def num_classes(self) -> int:
        """Classes of the task: categories for ``cls``; categories plus background for ``det`` and ``seg``."""
        k = self.config.num_categories
        return k if self.task == "cls" else k + 1

    @property
    def class_names(self) -> list[str]:
        names = list(CATEGORIES[: self.config.num_categories])
        return names if self.task == "cls" else ["background", *names]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} scenes")
        sample = self._scenes.get(index)
        if sample is None:
            sample = self._format(make_scene(self.seed, index, self.config), index)
            if self.cache:
                self._scenes[index] = sample
        return sample

    def load(self, index: int) -> dict:
        """Scene ``index`` (see :meth:`augcomp.data.ADE20K.load`): synthetic scenes have no geometry to draw."""
        return self[index]

    def augment(self, sample: dict) -> dict:
        """The sample as it is: synthetic scenes are used without geometric augmentation."""
        return sample

    def _format(self, scene: Scene, index: int) -> dict:
        if self.task == "cls":
            return {"image": scene.image, "label": scene.label}
        if self.task == "det":
            return {"image": scene.image, "boxes": scene.boxes, "labels": scene.categories + 1, "image_id": index}
        return {"image": scene.image, "mask": scene.mask}
