"""Bad input fails fast with a message naming the argument and the accepted values."""

from __future__ import annotations

import pytest
import torch

import augcomp
from augcomp import codecs, functional
from augcomp.transforms import Compress


@pytest.mark.parametrize(
    ("x", "error", "words"),
    [
        (torch.rand(3, 5, 8), None, None),  # (C, H, W) is fine
        (torch.rand(1, 2, 3, 8, 8), None, None),  # leading dimensions are samples
        (torch.rand(8, 8), ValueError, ["x", "(..., C, H, W)", "channel dimension"]),
        (torch.rand(2, 4, 8, 8), ValueError, ["x", "channels"]),
        (torch.rand(2, 2, 8, 8), ValueError, ["x", "1 or 3"]),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.int32), TypeError, ["x", "uint8", "float"]),
        (torch.zeros(1, 3, 8, 8, dtype=torch.bool), TypeError, ["x", "dtype"]),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, ["x", "NaN"]),
        (torch.full((1, 3, 8, 8), float("inf")), ValueError, ["x", "infinite"]),
        (torch.full((1, 3, 8, 8), -float("inf")), ValueError, ["x", "infinite"]),
        (torch.rand(1, 3, 8, 8) * 255, ValueError, ["x", "[0, 1]", "uint8"]),
        (torch.rand(1, 3, 8, 8) - 0.5, ValueError, ["x", "[0, 1]"]),
        (torch.zeros(1, 3, 0, 8), ValueError, ["x", "H >= 1"]),
    ],
)
def test_image_checks(x, error, words):
    if error is None:
        functional.compress(x, quality=50)
        return
    with pytest.raises(error) as info:
        functional.compress(x, quality=50)
    for word in words:
        assert word in str(info.value)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="torch.Tensor"):
        functional.compress([[1, 2]], quality=50)


@pytest.mark.parametrize("quality", [0, 0.5, 101, -3, float("nan"), (50, 200), torch.tensor([0.0, 50.0])])
def test_quality_out_of_range(quality):
    with pytest.raises(ValueError, match=r"quality.*\[1, 100\]"):
        functional.compress(torch.rand(2, 3, 8, 8), quality=quality)


@pytest.mark.parametrize("bpp", [0, -1, (0.0, 1.0), torch.tensor([0.5, -0.1]), float("inf"), (0.5, float("inf")),
                                 torch.tensor([0.5, float("inf")])])
def test_bpp_must_be_positive(bpp):
    with pytest.raises(ValueError, match=r"bpp.*\(0"):
        functional.compress(torch.rand(2, 3, 8, 8), bpp=bpp)


def test_inverted_range():
    with pytest.raises(ValueError, match="lo <= hi"):
        functional.compress(torch.rand(2, 3, 8, 8), bpp=(2.0, 0.5))
    with pytest.raises(ValueError, match="lo <= hi"):
        Compress(bpp=(2.0, 0.5))


def test_both_or_neither():
    for kwargs in ({}, {"quality": 50, "bpp": 1.0}):
        with pytest.raises(ValueError, match="exactly one of"):
            functional.compress(torch.rand(1, 3, 8, 8), **kwargs)
        with pytest.raises(ValueError, match="exactly one of"):
            Compress(**kwargs)


def test_unknown_codec_lists_known_ones():
    with pytest.raises(ValueError) as info:
        functional.compress(torch.rand(1, 3, 8, 8), "jpg", quality=50)
    assert "jpg" in str(info.value) and all(name in str(info.value) for name in codecs.list())
    with pytest.raises(ValueError, match="known codecs: jpeg"):
        Compress(codec=["jpeg", "webpp"], bpp=1.0)


def test_bad_options():
    with pytest.raises(ValueError, match="subsampling"):
        functional.compress(torch.rand(1, 3, 8, 8), quality=50, subsampling="422")
    with pytest.raises(ValueError, match="grad"):
        functional.compress(torch.rand(1, 3, 8, 8), quality=50, grad="soft")
    with pytest.raises(ValueError, match="backend"):
        functional.compress(torch.rand(1, 3, 8, 8), quality=50, backend="gpu")
    with pytest.raises(ValueError, match="p must be"):
        Compress(bpp=1.0, p=1.5)


def test_rounding_slack_is_accepted():
    x = torch.rand(1, 3, 8, 8) * (1 + 5e-4) - 2e-4
    assert augcomp.compress(x, quality=50).image.shape == x.shape


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"grad": "STE"}, "grad"), ({"subsampling": "422"}, "subsampling"), ({"foo": 1}, "foo"), ({"bpp": []}, "bpp"),
    ({"codec": []}, "codec"), ({"codec": "jpg"}, "codec"), ({"p": "0.5"}, "p must"), ({"p": True}, "p must"),
    ({"bpp": float("inf")}, "bpp"), ({"same_on_batch": "yes"}, "same_on_batch"), ({"generator": 3}, "generator"),
    ({"threads": 0}, "threads"), ({"tol": 2}, "tol"),
])
def test_compress_refuses_bad_options_at_construction(kwargs, name):
    with pytest.raises(ValueError) as info:
        Compress(**{"bpp": 1.0, **kwargs})
    assert name in str(info.value)


def test_level_tensor_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        functional.compress(torch.rand(2, 3, 8, 8), quality=torch.tensor([50.0, 60.0, 70.0]))
