"""Bad files in real dataset layouts: each kind of fault, in every split and adapter, is found by the header scan
before any sample is used and by the load check when a sample is read, and the error names the file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from augcomp.data import ADE20K, BadFileError, CocoDetection, ImageFolderClassification, check_files, collate, subset
from augcomp.experiment.errors import one_line

H, W = 48, 64


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _rgb(seed: int, h: int = H, w: int = W) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _mask(h: int = H, w: int = W) -> Image.Image:
    m = np.zeros((h, w), dtype=np.uint8)
    m[h // 4:, : w // 2] = 1
    m[h // 4:, w // 2:] = 150
    return Image.fromarray(m)


def make_ade(root: Path, n: int = 3) -> Path:
    """A tiny ADE20K layout: ``n`` images of 48x64 and their masks in each split."""
    base = root / "ADEChallengeData2016"
    for split in ("training", "validation"):
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            _rgb(i).save(base / "images" / split / f"s{i}.jpg", quality=90)
            _mask().save(base / "annotations" / split / f"s{i}.png")
    return base


# Every kind of damaged file, made from a good file's bytes (the format is the file's own: JPEG images, PNG masks).
FAULTS = {
    "truncated": lambda data: data[: len(data) // 2],
    "last quarter cut": lambda data: data[: len(data) * 3 // 4],
    "zero bytes": lambda data: b"",
    "not an image": lambda data: b"<html><body>404 Not Found</body></html>\n" * 8,
    "header only": lambda data: data[:40],
}


def _damage(path: Path, fault: str) -> None:
    path.write_bytes(FAULTS[fault](path.read_bytes()))


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("split", "kind"), [("training", "images"), ("validation", "images"),
                                             ("training", "annotations"), ("validation", "annotations")])
def test_a_damaged_file_is_named_by_the_scan_and_by_the_load(tmp_path, fault, split, kind):
    base = make_ade(tmp_path)
    victim = base / kind / split / ("s1.jpg" if kind == "images" else "s1.png")
    _damage(victim, fault)
    ds = ADE20K(tmp_path, split, image_size=32)
    with pytest.raises(BadFileError) as info:
        check_files(ds)
    assert info.value.path == str(victim) and str(info.value).startswith(f"{victim}: ")
    # Without the scan, reading the sample fails naming the file too, instead of a Pillow traceback.
    with pytest.raises(BadFileError, match=f"^{victim}: "):
        ds[1]
    ds[0], ds[2]  # the good samples load
    kept, bad = check_files(ds, skip=True)
    assert len(kept) == 2 and [b["path"] for b in bad] == [str(victim)]
    assert all(kept[i]["image"].shape == (3, 32, 32) for i in range(len(kept)))


@pytest.mark.parametrize("split", ["training", "validation"])
@pytest.mark.parametrize(("h", "w"), [(W, H), (H // 2, W // 2), (H, W + 1), (2 * H, 2 * W), (H - 1, W)])
def test_a_mask_of_another_size_is_an_error_in_both_splits(tmp_path, split, h, w):
    # Transposed, the same aspect at half or double size, one pixel off: resizing and cropping would otherwise
    # silently misalign the labels (same aspect) or fail inside torchvision.
    base = make_ade(tmp_path)
    mask = base / "annotations" / split / "s2.png"
    _mask(h, w).save(mask)
    ds = ADE20K(tmp_path, split, image_size=32)
    expected = f"{mask}: mask is {w}x{h} but its image s2.jpg is {W}x{H}"
    with pytest.raises(BadFileError) as info:
        check_files(ds)
    assert str(info.value).startswith(expected)
    with pytest.raises(BadFileError) as info:
        ds[2]
    assert str(info.value).startswith(expected)
    kept, bad = check_files(subset(ds, 3), skip=True)
    assert len(kept) == 2 and bad == [{"path": str(mask), "fault": expected.split(": ", 1)[1] + " (width x height)"}]


def test_data_after_the_end_marker_is_not_a_fault(tmp_path):
    # Some cameras append data after a JPEG's end marker; such a file decodes and must not be taken for truncated.
    base = make_ade(tmp_path)
    path = base / "images" / "validation" / "s0.jpg"
    path.write_bytes(path.read_bytes() + b"\x00trailer" * 64)
    ds = ADE20K(tmp_path, "validation", image_size=32)
    assert check_files(ds) == (ds, []) and ds[0]["image"].shape == (3, 32, 32)


def test_the_scan_reads_headers_only(tmp_path, monkeypatch):
    # Sizes come from the header: no image is decoded by the scan.
    make_ade(tmp_path, n=4)
    ds = ADE20K(tmp_path, "validation", image_size=32)
    decoded = []
    real_load = Image.Image.load

    def load(self):
        decoded.append(self)
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", load)
    assert check_files(ds) == (ds, [])
    assert decoded == []


def test_a_scan_covers_only_the_subset_used_and_counts_the_others(tmp_path):
    base = make_ade(tmp_path, n=4)
    for i in (0, 3):
        (base / "images" / "validation" / f"s{i}.jpg").write_bytes(b"")
    ds = ADE20K(tmp_path, "validation", image_size=32)
    with pytest.raises(BadFileError, match=r"s0\.jpg: empty file .*\(1 more bad file"):
        check_files(ds)
    assert check_files(_sub(ds, [1, 2]))[1] == []
    with pytest.raises(BadFileError, match="every file of this split is bad"):
        check_files(_sub(ds, [0, 3]), skip=True)


def _sub(ds, indices):
    from torch.utils.data import Subset

    return Subset(ds, indices)


@pytest.mark.parametrize("fault", ["truncated", "zero bytes", "not an image"])
def test_imagefolder_names_a_damaged_image(tmp_path, fault):
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                _rgb(i).save(root / split / cls / f"{i}.png")
    victim = root / "val" / "dog" / "1.png"
    _damage(victim, fault)
    val = ImageFolderClassification(root, "val", image_size=32, train=False)
    with pytest.raises(BadFileError, match=f"^{victim}: "):
        check_files(val)
    with pytest.raises(BadFileError, match=f"^{victim}: "):
        val[3]
    assert len(check_files(val, skip=True)[0]) == 3
    assert check_files(ImageFolderClassification(root, "train", image_size=32))[1] == []


def test_coco_names_an_image_of_another_size_than_its_annotations(coco_root):
    # Boxes are in the annotated size's pixels: an image of another size would misplace every box.
    path = coco_root / "val2017" / f"{2:012d}.jpg"
    _rgb(0, 48, 64).save(path)  # annotated as 64 high, 48 wide
    val = CocoDetection(coco_root, "val2017", max_size=None)
    expected = f"{path}: image is 64x48 but its annotations give 48x64 (width x height)"
    with pytest.raises(BadFileError) as info:
        check_files(val)
    assert str(info.value) == expected
    with pytest.raises(BadFileError) as info:
        val[1]
    assert str(info.value) == expected
    _damage(coco_root / "val2017" / f"{3:012d}.jpg", "truncated")
    _, bad = check_files(val, skip=True)
    assert [b["path"] for b in bad] == [str(path), str(coco_root / "val2017" / f"{3:012d}.jpg")]


def test_a_load_failure_in_a_worker_is_one_line_naming_the_file(tmp_path):
    base = make_ade(tmp_path)
    victim = base / "images" / "validation" / "s1.jpg"
    _damage(victim, "truncated")
    loader = DataLoader(ADE20K(tmp_path, "validation", image_size=32), batch_size=3, num_workers=1,
                        collate_fn=collate)
    with pytest.raises(BadFileError) as info:
        next(iter(loader))
    assert "Traceback" in str(info.value)  # the worker's traceback came back as the message
    message = one_line(info.value)
    assert message is not None and "\n" not in message
    assert message.startswith(f"{victim}: cannot be decoded (OSError: image file is truncated")
    assert "remove or replace the file" in message


def test_synthetic_data_passes_unchanged():
    from augcomp.data import SyntheticScenes

    ds = SyntheticScenes("seg", 2, seed=0)
    assert check_files(ds, skip=True) == (ds, [])


def test_bad_file_messages_are_json_friendly(tmp_path):
    base = make_ade(tmp_path)
    _damage(base / "annotations" / "training" / "s0.png", "not an image")
    _, bad = check_files(ADE20K(tmp_path, "training", image_size=32), skip=True)
    assert json.loads(json.dumps(bad)) == bad and "not an image Pillow can read" in bad[0]["fault"]
