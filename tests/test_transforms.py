"""``Compress`` as a drop-in transform."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

import augcomp
from augcomp import codecs, functional
from augcomp.codecs.jpeg import JPEGCodec
from augcomp.transforms import Compress
from tests._oracle import natural, to_tensor


def _batch(n: int, size: int = 32) -> torch.Tensor:
    image = to_tensor(natural("astronaut"))
    g = torch.Generator().manual_seed(1)
    ys = torch.randint(0, 512 - size, (n,), generator=g).tolist()
    xs = torch.randint(0, 512 - size, (n,), generator=g).tolist()
    return torch.stack([image[:, y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])


def test_hits_per_sample_bpp_and_logs_it():
    x = _batch(8, 48)
    aug = Compress(bpp=(0.5, 2.0), generator=torch.Generator().manual_seed(0))
    y = aug(x)
    params = aug.last_params
    assert y.shape == x.shape and y.dtype == x.dtype
    assert params["applied"].all() and params["codec_index"].eq(0).all() and params["codec"] == ["jpeg"] * 8
    assert ((params["bpp"] - params["target"]).abs() / params["target"] < 0.05).float().mean() >= 0.85
    ref = functional.compress(x, quality=params["level"])
    assert torch.equal(ref.image, y) and torch.equal(ref.bpp, params["bpp"])


def test_p_statistics_and_skipped_samples_untouched():
    x = _batch(400, 16)
    aug = Compress(quality=(5, 30), p=0.3, generator=torch.Generator().manual_seed(0))
    y = aug(x)
    applied = aug.last_params["applied"]
    assert abs(applied.float().mean().item() - 0.3) < 0.07
    assert torch.equal(y[~applied], x[~applied])
    assert torch.isnan(aug.last_params["bpp"][~applied]).all()
    assert not torch.isnan(aug.last_params["bpp"][applied]).any()
    target = aug.last_params["target"][applied]
    assert torch.equal(y[applied], functional.compress(x[applied], quality=target).image)


def test_p_zero_and_same_on_batch():
    x = _batch(16, 16)
    assert torch.equal(Compress(bpp=1.0, p=0.0)(x), x)
    aug = Compress(bpp=(0.2, 3.0), same_on_batch=True, generator=torch.Generator().manual_seed(3))
    aug(x)
    target = aug.last_params["target"]
    assert torch.equal(target, target[:1].expand(16))
    applied = [bool(Compress(bpp=1.0, p=0.5, same_on_batch=True, generator=torch.Generator().manual_seed(s))(x)
                    .ne(x).any()) for s in range(40)]
    assert 10 <= sum(applied) <= 30


def test_log_uniform_bpp_and_choice_lists():
    aug = Compress(bpp=(0.1, 10.0), generator=torch.Generator().manual_seed(0))
    params = aug.make_params([torch.zeros(4000, 3, 8, 8)])
    logs = torch.log10(params["target"])
    assert logs.min() >= -1 and logs.max() <= 1 and abs(logs.mean().item()) < 0.05
    assert abs((logs < 0).float().mean().item() - 0.5) < 0.03
    aug = Compress(quality=[10, 50, 90], generator=torch.Generator().manual_seed(0))
    values = aug.make_params([torch.zeros(600, 3, 8, 8)])["target"]
    assert set(values.tolist()) == {10.0, 50.0, 90.0}


def test_replay_gives_the_same_output():
    x = _batch(6, 24)
    aug = Compress(bpp=(0.3, 3.0), p=0.5, generator=torch.Generator().manual_seed(5))
    y = aug(x)
    assert torch.equal(aug.transform(x, aug.last_params), y)


def test_codec_list_draws_per_sample():
    entry = codecs.CodecEntry("jpeg-444-test", lambda e, **o: JPEGCodec(e, subsampling="444", **o), (1.0, 100.0),
                              False, family="jpeg")
    codecs.register(entry, replace=True)
    try:
        x = _batch(64, 16)
        aug = Compress(codec=["jpeg", "jpeg-444-test"], quality=50.0, generator=torch.Generator().manual_seed(0))
        y = aug(x)
        which = aug.last_params["codec_index"]
        assert 15 < int(which.sum()) < 49
        assert aug.last_params["codec"] == [["jpeg", "jpeg-444-test"][k] for k in which.tolist()]
        assert not any(key.startswith("_") for key in aug.last_params)
        for k, sub in ((0, "420"), (1, "444")):
            ref = functional.compress(x[which == k], quality=50.0, subsampling=sub)
            assert torch.equal(y[which == k], ref.image)
    finally:
        codecs.registry._REGISTRY.pop("jpeg-444-test", None)


def test_v2_pipeline_with_boxes_and_masks():
    image = tv_tensors.Image(to_tensor(natural("coffee")[:64, :80]))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[3, 4, 30, 40], [10, 12, 70, 60]]), format="XYXY",
                                     canvas_size=(64, 80))
    mask = tv_tensors.Mask(torch.randint(0, 5, (64, 80), dtype=torch.uint8))
    sample = {"image": image, "boxes": boxes, "masks": mask, "labels": torch.tensor([1, 2]), "id": 7}
    pipeline = v2.Compose([v2.RandomHorizontalFlip(p=1.0), Compress(bpp=0.4), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(sample)
    assert isinstance(out["image"], tv_tensors.Image) and isinstance(out["boxes"], tv_tensors.BoundingBoxes)
    flipped = v2.RandomHorizontalFlip(p=1.0)(sample)
    assert torch.equal(out["boxes"], flipped["boxes"]) and torch.equal(out["masks"], flipped["masks"])
    assert torch.equal(out["labels"], sample["labels"]) and out["id"] == 7
    expected = functional.compress(flipped["image"].as_subclass(torch.Tensor), bpp=0.4).image
    assert torch.equal(out["image"], v2.functional.to_dtype(expected, torch.float32, scale=True))


def test_video_is_compressed_per_frame():
    video = tv_tensors.Video(_batch(6, 16).reshape(2, 3, 3, 16, 16))
    aug = Compress(quality=20.0)
    out = aug(video)
    assert isinstance(out, tv_tensors.Video) and out.shape == video.shape
    assert aug.last_params["bpp"].shape == (6,)


class _Images(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.images = _batch(8, 24)
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), i


def test_dataloader_workers_and_pickling():
    aug = Compress(bpp=(0.5, 2.0))
    assert isinstance(pickle.loads(pickle.dumps(aug)), Compress)
    loader = torch.utils.data.DataLoader(_Images(aug), batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(len(b[0]) for b in batches) == 8
    images = torch.cat([b[0] for b in batches])
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 24, 24)
    assert (images != _batch(8, 24)).any()


def test_gradients_reach_the_input():
    x = (_batch(4, 24).float() / 255).requires_grad_()
    y = Compress(bpp=(0.5, 2.0), p=0.75, generator=torch.Generator().manual_seed(2))(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.flatten(1).abs().sum(1) > 0).all()


def test_kornia_augmentation_sequential():
    import kornia.augmentation as K

    x = _batch(2, 32).float() / 255
    mask = torch.rand(2, 1, 32, 32)
    seq = K.AugmentationSequential(K.RandomHorizontalFlip(p=1.0), Compress(quality=30.0),
                                   data_keys=["input", "mask"])
    image, out_mask = seq(x, mask)
    ref = functional.compress(x.flip(-1), quality=30.0).image
    assert torch.equal(image, ref) and torch.equal(out_mask, mask.flip(-1))


def test_torch_compile_smoke():
    aug = Compress(quality=(20, 80), backend="torch", grad="none", generator=torch.Generator().manual_seed(0))
    x = _batch(2, 16).float() / 255
    compiled = torch.compile(aug)
    y = compiled(x)
    ref = functional.compress(x, quality=aug.last_params["level"], backend="torch").image
    assert torch.equal(y, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_stays_on_device():
    x = _batch(8, 32).cuda()
    aug = Compress(bpp=(0.3, 2.0))
    y = aug(x)
    assert y.device.type == "cuda" and aug.last_params["bpp"].device.type == "cuda"
    assert not math.isnan(float(aug.last_params["bpp"].mean()))
    assert np.isfinite(aug.last_params["level"].cpu().numpy()).all()


def test_documented_pipeline_returns_float_tensors_for_pil_input():
    # The training pipeline of the docs' getting-started page, as written there.
    import PIL.Image

    train_tf = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(224), Compress(bpp=(0.1, 2.0), p=0.5),
                           v2.ToDtype(torch.float32, scale=True)])
    page = (Path(__file__).parents[1] / "docs" / "getting-started.md").read_text()
    assert "train_tf = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(224), Compress(bpp=(0.1, 2.0), p=0.5)," in page
    image = PIL.Image.fromarray(natural("astronaut")[:240, :260])
    out = train_tf(image)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3, 224, 224)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_two_dimensional_tensors_are_refused_like_compress():
    aug = Compress(quality=50)
    x = torch.rand(32, 48)
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        aug(x)
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        augcomp.compress(x, quality=50)
    assert aug(x[None]).shape == (1, 32, 48)
