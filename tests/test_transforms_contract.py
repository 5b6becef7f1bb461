"""``Compress`` against torchvision's v2 transform contract (``check_transform``, adapted from torchvision's own
test suite) and the pipeline defects it once had: PIL images, several images per sample, samples with nothing to
compress, DataLoader workers, and the same level on the native and tensor paths."""

from __future__ import annotations

import pickle

import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import augcomp
from augcomp.transforms import Compress
from tests._oracle import natural, to_tensor


def _images(n: int, size: int = 24, seed: int = 0) -> torch.Tensor:
    image = to_tensor(natural("astronaut"))
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, 512 - size, (n,), generator=g).tolist()
    xs = torch.randint(0, 512 - size, (n,), generator=g).tolist()
    return torch.stack([image[:, y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])


def _sample() -> dict:
    x = _images(3, 24)
    return {
        "image": tv_tensors.Image(x[0]),
        "video": tv_tensors.Video(x[1:].unsqueeze(0)),  # (1, 2, 3, H, W): two frames
        "boxes": tv_tensors.BoundingBoxes(torch.tensor([[1, 2, 10, 12]]), format="XYXY", canvas_size=(24, 24)),
        "mask": tv_tensors.Mask(torch.zeros(24, 24, dtype=torch.uint8)),
        "label": 3,
        "name": "a",
    }


def check_transform(transform: Compress, sample: dict) -> None:
    """torchvision's ``check_transform``: sample smoke test, pickling, pass-through identity, no in-place change."""
    versions = {k: v._version for k, v in sample.items() if isinstance(v, torch.Tensor)}
    out = transform(sample)
    for key, value in sample.items():
        if isinstance(value, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) or not isinstance(value, torch.Tensor):
            assert out[key] is value, f"{key} must pass through as the same object"
        else:
            assert type(out[key]) is type(value) and out[key].shape == value.shape and out[key].dtype == value.dtype
            assert value._version == versions[key], f"{key} modified in place"
    restored = pickle.loads(pickle.dumps(transform))
    assert isinstance(restored, Compress) and restored.codec_names == transform.codec_names
    restored(sample)


@pytest.mark.parametrize("kwargs", [{"quality": (20.0, 80.0)}, {"bpp": (0.3, 2.0)},
                                    {"codec": ["jpeg", "webp"], "bpp": (0.3, 2.0)}])
def test_check_transform(kwargs):
    check_transform(Compress(**kwargs, generator=torch.Generator().manual_seed(0)), _sample())


def test_image_and_video_each_get_their_own_parameters():
    aug = Compress(bpp=(0.3, 2.0), generator=torch.Generator().manual_seed(0))
    sample = _sample()
    out = aug(sample)
    params = aug.last_params
    assert params["item"].tolist() == [0, 1, 1] and params["bpp"].shape == (3,)
    assert not torch.isnan(params["bpp"]).any()
    image = augcomp.compress(sample["image"].as_subclass(torch.Tensor), quality=params["level"][0]).image
    video = augcomp.compress(sample["video"].as_subclass(torch.Tensor), quality=params["level"][1:].reshape(1, 2))
    assert torch.equal(out["image"], image) and torch.equal(out["video"], video.image)
    for first, second in ((sample["video"], sample["image"]), (tv_tensors.Image(_images(2)), sample["image"])):
        assert aug((first, second))[0].shape == first.shape


def test_pil_images_come_back_as_pil():
    x = _images(1, 32)[0]
    for mode, tensor in (("RGB", x), ("L", x[:1])):
        pil = TF.to_pil_image(tensor, mode=mode)
        aug = Compress(quality=30.0)
        out = aug(pil)
        assert isinstance(out, PIL.Image.Image) and out.mode == mode and out.size == pil.size
        assert torch.equal(TF.pil_to_tensor(out), augcomp.compress(tensor, quality=30.0).image)
        ref = v2.JPEG(quality=30)(pil)
        assert torch.equal(TF.pil_to_tensor(out), TF.pil_to_tensor(ref))  # libjpeg-turbo both ways
    with pytest.raises(ValueError, match="mode 'RGB' or 'L'"):
        Compress(quality=30.0)(PIL.Image.new("CMYK", (8, 8)))


@pytest.mark.parametrize("sample", [{"mask": tv_tensors.Mask(torch.zeros(8, 8))}, {"label": 1}, (1, "a"),
                                    tv_tensors.BoundingBoxes(torch.zeros(1, 4), format="XYXY", canvas_size=(8, 8))])
def test_samples_with_nothing_to_compress_pass_through(sample):
    assert Compress(bpp=1.0)(sample) is sample or Compress(bpp=1.0)(sample) == sample


class _Masks(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.transform({"mask": tv_tensors.Mask(torch.full((4, 4), i)), "label": i})


@pytest.mark.parametrize("workers", [0, 1])
def test_mask_only_samples_do_not_end_the_epoch(workers):
    loader = torch.utils.data.DataLoader(_Masks(Compress(bpp=1.0)), batch_size=2, num_workers=workers)
    assert len(list(loader)) == 4


class _Draws(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform
        self.image = _images(1, 16)[0]

    def __len__(self):
        return 8

    def __getitem__(self, i):
        self.transform(self.image)
        return self.transform.last_params["target"]


def test_workers_draw_different_parameters_with_an_explicit_generator():
    aug = Compress(quality=(1.0, 100.0), generator=torch.Generator().manual_seed(123))
    torch.manual_seed(0)
    draws = torch.cat(list(torch.utils.data.DataLoader(_Draws(aug), batch_size=4, num_workers=2)))
    assert not torch.equal(draws[:4], draws[4:]), "both workers drew the same sequence"
    torch.manual_seed(0)
    again = torch.cat(list(torch.utils.data.DataLoader(_Draws(aug), batch_size=4, num_workers=2)))
    assert torch.equal(draws, again), "runs with the same seed must draw the same parameters"


def test_native_and_tensor_paths_choose_the_same_level():
    x = _images(6, 40, seed=3)
    targets = torch.tensor([0.3, 0.5, 0.8, 1.0, 1.5, 2.0])
    native = augcomp.compress(x, bpp=targets, backend="native")
    tensor = augcomp.compress(x, bpp=targets, backend="torch")
    assert torch.equal(native.level, tensor.level)
    assert torch.equal(native.image, tensor.image) and torch.equal(native.bits, tensor.bits)


def test_batched_equals_unbatched():
    x = _images(4, 24)
    levels = torch.tensor([10.0, 30.0, 50.0, 90.0])
    batched = augcomp.compress(x, quality=levels).image
    assert all(torch.equal(augcomp.compress(x[i], quality=levels[i]).image, batched[i]) for i in range(4))
