"""The compiled tensor JPEG: one graph for every image size, still bit-exact to libjpeg-turbo.

Detection and segmentation batches change size from batch to batch; a compiled path that recompiles for each size
would spend minutes compiling. ``torch.compiler.set_stance("fail_on_recompile")`` turns any recompilation into an
error, so these tests fail if a size-dependent guard creeps back in.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import augcomp
from augcomp.codecs import jpeg as jpeg_codec
from tests._oracle import libjpeg, natural, to_tensor

# Whole MCUs; partial blocks and partial MCUs in both directions; another aspect ratio.
SIZES = [(48, 64), (37, 53), (72, 24)]
QUALITIES = [7.0, 50.0, 93.0]


def _batch(h: int, w: int) -> tuple[np.ndarray, torch.Tensor]:
    image = natural("astronaut")[100 : 100 + h, 180 : 180 + w]
    return image, to_tensor(image)[None].expand(len(QUALITIES), -1, -1, -1).contiguous()


def test_compiled_fixed_quality_serves_three_sizes_without_recompiling_and_stays_exact():
    q = torch.tensor(QUALITIES)
    for i, (h, w) in enumerate(SIZES):
        image, x = _batch(h, w)
        with torch.compiler.set_stance("fail_on_recompile" if i else "default"):
            out = augcomp.compress(x, codec="jpeg", quality=q, backend="torch", compile=True)
        for k, qv in enumerate(QUALITIES):
            ref, ref_bits, _ = libjpeg(image, qv)
            assert np.array_equal(out.image[k].permute(1, 2, 0).numpy(), ref), (h, w, qv)
            assert float(out.bits[k]) == ref_bits, (h, w, qv)


def test_compiled_rate_control_and_training_keep_one_graph_for_every_size(monkeypatch):
    # Rate control compiles two more graphs (the DCT stream and one search step). A training step (float input that
    # requires grad, under autocast) and an evaluation step (no_grad) must reuse the same graphs at every size: the
    # compiled calls run without grad mode and without autocast, and the gradient is attached outside them. Shape
    # handling is dynamo's and AOTAutograd's, which the inductor test above exercises end to end; the cheaper
    # aot_eager backend keeps this test short while checking the same guards.
    for fn in (jpeg_codec._float_stream, jpeg_codec.jpeg_stream_rate, jpeg_codec.jpeg_roundtrip_any_size):
        monkeypatch.setitem(jpeg_codec._COMPILED, fn, torch.compile(fn, dynamic=True, backend="aot_eager"))
    q = torch.tensor(QUALITIES)
    for i, (h, w) in enumerate(SIZES):
        image, x = _batch(h, w)
        xf = (x.float() / 255).requires_grad_(True)
        with torch.compiler.set_stance("fail_on_recompile" if i else "default"):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = augcomp.compress(xf, codec="jpeg", quality=q, backend="torch", compile=True, grad="ste")
                targeted = augcomp.compress(xf, codec="jpeg", bpp=torch.tensor([0.4, 1.0, 2.5]), backend="torch",
                                            compile=True, grad="ste")
            with torch.no_grad():
                evaluated = augcomp.compress(x, codec="jpeg", quality=q, backend="torch", compile=True)
        (out.image.sum() + targeted.image.sum()).backward()
        assert out.image.dtype == torch.float32 and xf.grad is not None and bool(xf.grad.abs().sum() > 0)
        ref, ref_bits, _ = libjpeg(image, QUALITIES[1])
        assert np.array_equal((out.image[1] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), ref)
        assert np.array_equal(evaluated.image[1].permute(1, 2, 0).numpy(), ref)
        assert float(out.bits[1]) == ref_bits
        # Rate control picks the quality libjpeg-turbo's own search picks, with the same pixels and bits.
        native = augcomp.compress(x, codec="jpeg", bpp=torch.tensor([0.4, 1.0, 2.5]), backend="native")
        assert torch.equal(targeted.level, native.level), (h, w)
        assert torch.equal((targeted.image.detach() * 255).round().to(torch.uint8), native.image)
        assert torch.equal(targeted.bits, native.bits)


def test_auto_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise torch._dynamo.exc.TorchDynamoException("no compiler here")

    monkeypatch.setitem(jpeg_codec._COMPILED, jpeg_codec.jpeg_roundtrip_any_size, broken)
    codec = augcomp.codecs.entry("jpeg").build(backend="torch", compile="auto")  # a private instance: it changes
    monkeypatch.setattr(codec, "_compiles_on", lambda device: True)  # as on CUDA
    image, x = _batch(*SIZES[1])
    q = torch.tensor(QUALITIES)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        out, bits = codec(x, q)
    assert codec.compile is False
    ref, ref_bits, _ = libjpeg(image, QUALITIES[0])
    assert out.dtype == torch.uint8 and np.array_equal(out[0].permute(1, 2, 0).numpy(), ref)
    assert float(bits[0]) == ref_bits


def test_explicit_compile_raises_instead_of_falling_back(monkeypatch):
    def broken(*args, **kwargs):
        raise torch._dynamo.exc.TorchDynamoException("no compiler here")

    monkeypatch.setitem(jpeg_codec._COMPILED, jpeg_codec.jpeg_roundtrip_any_size, broken)
    codec = augcomp.codecs.entry("jpeg").build(backend="torch", compile=True)
    with pytest.raises(RuntimeError, match="no compiler here"):
        codec(_batch(*SIZES[0])[1], torch.tensor(QUALITIES))


def test_auto_compile_does_not_hide_errors_that_are_not_compilation(monkeypatch):
    # A recompilation refused by the caller's stance, or an error while running, must reach the caller.
    def refused(*args, **kwargs):
        raise RuntimeError("Detected recompile when torch.compile stance is 'fail_on_recompile'")

    monkeypatch.setitem(jpeg_codec._COMPILED, jpeg_codec.jpeg_roundtrip_any_size, refused)
    codec = augcomp.codecs.entry("jpeg").build(backend="torch", compile="auto")
    monkeypatch.setattr(codec, "_compiles_on", lambda device: True)
    with pytest.raises(RuntimeError, match="fail_on_recompile"):
        codec(_batch(*SIZES[0])[1], torch.tensor(QUALITIES))
    assert codec.compile == "auto"


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_bad_compile_option_names_the_accepted_values(value):
    with pytest.raises(ValueError, match=r"compile must be one of \('auto', True, False\)"):
        augcomp.codecs.get("jpeg", compile=value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_default_options_compile_once_for_three_sizes():
    q = torch.tensor(QUALITIES, device="cuda")
    for i, (h, w) in enumerate(SIZES):
        image, x = _batch(h, w)
        with torch.compiler.set_stance("fail_on_recompile" if i else "default"):
            out = augcomp.compress(x.cuda(), codec="jpeg", quality=q)
            targeted = augcomp.compress(x.cuda(), codec="jpeg", bpp=torch.tensor([0.4, 1.0, 2.5], device="cuda"))
        for k, qv in enumerate(QUALITIES):
            ref, ref_bits, _ = libjpeg(image, qv)
            assert np.array_equal(out.image[k].permute(1, 2, 0).cpu().numpy(), ref), (h, w, qv)
            assert float(out.bits[k]) == ref_bits
        native = augcomp.compress(x, codec="jpeg", bpp=torch.tensor([0.4, 1.0, 2.5]), backend="native")
        assert torch.equal(targeted.level.cpu(), native.level) and torch.equal(targeted.image.cpu(), native.image)
