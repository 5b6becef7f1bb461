"""Synthetic scenes (determinism, consistent ground truth, texture that compression removes) and the loaders of the
real dataset layouts, run on tiny fixtures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from augcomp.data import (
    ADE20K,
    CATEGORIES,
    IGNORE_INDEX,
    PRESETS,
    CocoDetection,
    ImageFolderClassification,
    SceneConfig,
    SyntheticScenes,
    collate,
    make_scene,
    subset,
)

# ------------------------------------------------------------------------------------------------ synthetic scenes


@pytest.mark.parametrize("task", ["cls", "det", "seg"])
def test_scene_is_deterministic_per_seed_and_index(task):
    cfg = PRESETS[task]
    a, b = make_scene(3, 7, cfg), make_scene(3, 7, cfg)
    for field in ("image", "mask", "instances", "boxes", "categories"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.label == b.label
    assert not torch.equal(a.image, make_scene(4, 7, cfg).image)
    assert not torch.equal(a.image, make_scene(3, 8, cfg).image)


@pytest.mark.parametrize("task", ["cls", "det", "seg"])
def test_scene_ground_truth_is_consistent(task):
    cfg = PRESETS[task]
    for index in range(25):
        s = make_scene(0, index, cfg)
        size = cfg.size
        assert s.image.shape == (3, size, size) and s.image.dtype == torch.uint8
        assert s.mask.shape == s.instances.shape == (size, size)
        n = len(s.categories)
        assert 1 <= n <= cfg.objects[1]
        assert s.boxes.shape == (n, 4)
        assert set(s.instances.unique().tolist()) == set(range(n + 1)) | ({0} if (s.instances == 0).any() else set())
        areas = []
        for i in range(n):
            sel = s.instances == i + 1
            ys, xs = torch.nonzero(sel, as_tuple=True)
            # The box is the extent of the object's visible pixels (x2, y2 exclusive).
            assert s.boxes[i].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert (s.mask[sel] == s.categories[i] + 1).all()
            areas.append(int(sel.sum()))
        assert (s.mask[s.instances == 0] == 0).all()
        assert 0 <= int(s.categories.min()) and int(s.categories.max()) < cfg.num_categories
        assert s.label == int(s.categories[int(np.argmax(areas))])


def test_classification_scenes_have_a_dominant_object_and_balanced_labels():
    cfg = PRESETS["cls"]
    labels = []
    for index in range(200):
        s = make_scene(1, index, cfg)
        areas = torch.bincount(s.instances.flatten(), minlength=len(s.categories) + 1)[1:]
        assert areas[0] == areas.max()  # the main object, drawn first, stays the largest visible one
        labels.append(s.label)
    counts = np.bincount(labels, minlength=cfg.num_categories)
    assert counts.min() >= 10, counts  # every category appears


def test_fine_texture_is_what_low_bitrate_jpeg_removes():
    from augcomp.functional import compress

    cfg = PRESETS["cls"]
    scenes = [make_scene(5, i, cfg) for i in range(16)]
    x = torch.stack([s.image for s in scenes])
    inside = torch.stack([s.instances == 1 for s in scenes])  # the main object
    # Erode the object mask so its outline (an edge, not texture) does not count.
    inside = -torch.nn.functional.max_pool2d(-inside[:, None].float(), 5, 1, 2)[:, 0] > 0

    def detail(img):  # high-pass luminance: the fine texture
        f = img.float().mean(1, keepdim=True)
        return (f - torch.nn.functional.avg_pool2d(f, 5, 1, 2, count_include_pad=False))[:, 0][inside]

    def kept(img):  # correlation of the decoded fine detail with the original's
        a, b = detail(x), detail(img)
        return float((a * b).sum() / (a.norm() * b.norm()))

    low = compress(x, "jpeg", bpp=0.15)
    high = compress(x, "jpeg", bpp=2.0)
    assert float(low.bpp.mean()) < 0.3
    assert kept(low.image) < 0.3
    assert kept(high.image) > 0.85


def test_scene_config_validation():
    with pytest.raises(ValueError, match="num_categories"):
        SceneConfig(num_categories=len(CATEGORIES) + 1)
    with pytest.raises(ValueError, match="size"):
        SceneConfig(size=8)
    with pytest.raises(ValueError, match="objects"):
        SceneConfig(objects=(0, 2))


def test_synthetic_dataset_formats_per_task():
    cfg = dataclasses.replace(PRESETS["det"], size=48)
    det = SyntheticScenes("det", 4, seed=1, config=cfg)
    s = det[2]
    scene = make_scene(1, 2, cfg)
    assert torch.equal(s["image"], scene.image)
    assert torch.equal(s["labels"], scene.categories + 1)  # 0 is background for torchvision detectors
    assert s["image_id"] == 2
    assert det.num_classes == cfg.num_categories + 1 and det.class_names[0] == "background"
    seg = SyntheticScenes("seg", 4, seed=1, config=dataclasses.replace(PRESETS["seg"], size=48))
    assert seg[0]["mask"].dtype == torch.int64 and seg.num_classes == PRESETS["seg"].num_categories + 1
    cls = SyntheticScenes("cls", 4, seed=1)
    assert isinstance(cls[0]["label"], int) and cls.num_classes == PRESETS["cls"].num_categories
    assert len(cls) == 4
    with pytest.raises(IndexError):
        cls[4]
    with pytest.raises(ValueError, match="task"):
        SyntheticScenes("depth", 4)


def test_collate_stacks_equal_sizes_and_lists_mixed_sizes():
    a = {"image": torch.zeros(3, 8, 8, dtype=torch.uint8), "boxes": torch.zeros(1, 4), "labels": torch.tensor([1]),
         "image_id": 5}
    b = {"image": torch.zeros(3, 8, 10, dtype=torch.uint8), "boxes": torch.zeros(0, 4),
         "labels": torch.zeros(0, dtype=torch.int64), "image_id": 6}
    mixed = collate([a, b])
    assert isinstance(mixed["image"], list) and [t.shape[-1] for t in mixed["image"]] == [8, 10]
    assert mixed["image_id"].tolist() == [5, 6] and len(mixed["target"]) == 2
    same = collate([a, a])
    assert same["image"].shape == (2, 3, 8, 8)
    cls = collate([{"image": torch.zeros(3, 4, 4, dtype=torch.uint8), "label": 3}] * 2)
    assert cls["label"].tolist() == [3, 3]


def test_subset_is_fixed_and_sized():
    ds = SyntheticScenes("cls", 10, seed=0)
    a, b = subset(ds, 4, seed=1), subset(ds, 4, seed=1)
    assert len(a) == 4 and a.indices == b.indices
    assert subset(ds, None) is ds and subset(ds, 50) is ds


# ------------------------------------------------------------------------------------------------ real layouts


def test_imagefolder_loader(imagefolder_root):
    train = ImageFolderClassification(imagefolder_root, "train", image_size=32)
    val = ImageFolderClassification(imagefolder_root, "val", image_size=32, classes=train.classes)
    assert train.classes == ["cat", "dog"] and len(train) == 6 and len(val) == 4
    s = val[3]
    assert s["image"].shape == (3, 32, 32) and s["image"].dtype == torch.uint8
    assert s["label"] == 1
    assert collate([train[0], train[5]])["label"].tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match="ImageFolder"):
        ImageFolderClassification(imagefolder_root, "test")


def test_coco_loader(coco_root):
    val = CocoDetection(coco_root, "val2017", train=False, max_size=None)
    assert len(val) == 3  # the image without annotations stays for evaluation
    assert val.num_classes == 4 and val.categories == {1: "person", 3: "car"}
    s = val[0]
    assert s["image"].shape == (3, 48, 64) and s["image"].dtype == torch.uint8  # grayscale converted to RGB
    assert s["boxes"].tolist() == [[4, 6, 24, 24], [30, 10, 55, 40]]  # xywh -> xyxy
    assert s["labels"].tolist() == [1, 3] and s["image_id"] == 1
    crowd = val[1]
    assert crowd["iscrowd"].tolist() == [0, 1]
    assert val[2]["boxes"].shape == (0, 4)

    train = CocoDetection(coco_root, "train2017", train=True, max_size=32)
    assert len(train) == 2  # the image without annotations is skipped for training
    t = train[1]
    assert t["iscrowd"].tolist() == [0] and t["labels"].tolist() == [3]  # crowd boxes are not trained on
    assert max(t["image"].shape[-2:]) == 32  # scaled down to the longer side
    assert float(t["boxes"].max()) <= 32
    with pytest.raises(FileNotFoundError, match="instances_test2017"):
        CocoDetection(coco_root, "test2017")


def test_ade20k_loader_maps_labels(ade20k_root):
    val = ADE20K(ade20k_root, "validation", image_size=48)
    assert len(val) == 2 and ADE20K.num_classes == 150
    s = val[0]
    assert s["image"].shape == (3, 48, 48) and s["mask"].shape == (48, 48) and s["mask"].dtype == torch.int64
    # 0 (unlabelled) -> ignore, class 1 -> 0, class 150 -> 149; the centre crop keeps columns 8..55.
    assert (s["mask"][:8] == IGNORE_INDEX).all()
    assert (s["mask"][8:, :24] == 0).all() and (s["mask"][8:, 24:] == 149).all()
    train = ADE20K(ade20k_root / "ADEChallengeData2016", "training", image_size=32)
    t = train[0]
    assert t["image"].shape == (3, 32, 32) and t["mask"].shape == (32, 32)
    assert set(t["mask"].unique().tolist()) <= {0, 149, IGNORE_INDEX}
    with pytest.raises(FileNotFoundError, match="ADE20K expects"):
        ADE20K(ade20k_root, "testing")
