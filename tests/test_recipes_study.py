"""The study across codec families: the default sweep covers several codecs at matched bitrates, one finetuned model
draws a codec, a bitrate and a clean share per image, and the report says which codec hurts least at each bitrate.

The recipe runs are ``--tiny``; the rest are unit tests of the pieces (the loop's augmentation, the report, the
options)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from augcomp import codecs
from augcomp.experiment import (
    CodecUnavailableError,
    Protocol,
    RecipeError,
    apply_compress,
    build_results,
    make_parser,
    matched_bpp,
    parse_args,
    recipe_entry_point,
    resolve_codecs,
    results_markdown,
    write_report,
)
from augcomp.tasks import TINY, get_task
from augcomp.tasks.settings import DEFAULT_CODECS
from augcomp.transforms import Compress
from tests.test_recipes import run_recipe

# ------------------------------------------------------------------------------------------------ the whole study


def test_default_study_covers_codec_families_and_reports_matched_bitrates(tmp_path):
    out = tmp_path / "study"
    # Fewer validation images than --tiny's 24, to keep the test short; the codecs and the mix are the defaults.
    proc = run_recipe("cls", "--tiny", "--val-size", "16", "--output-dir", str(out))
    results = json.loads((out / "results.json").read_text())
    names = DEFAULT_CODECS.split(",")
    assert len(names) >= 3 and names[0] == "jpeg" and {"jpeg2000", "avif", "augcomp-tiny"} <= set(names)
    grid = list(TINY["bpp_grid"])
    # One row per codec and target, in the sweep's order.
    assert results["codecs"] == names
    assert [(r["codec"], r["bpp"]) for r in results["rows"]] == [(c, b) for c in names for b in grid]

    # One finetuned model for all of them: the mix drew every codec, and kept a share of the images clean.
    assert results["train_codecs"] == names and results["clean_share"] == 0.5
    draws = results["finetune_draws"]
    assert list(draws) == ["clean", *names] and sum(draws.values()) == 48
    assert all(draws[k] > 0 for k in draws)
    assert 0.2 < draws["clean"] / 48 < 0.8
    epoch = [line for line in proc.stdout.splitlines() if line.startswith("finetune epoch 1/1:")]
    assert epoch and "images clean" in epoch[0] and all(f"{c} {draws[c]}" in epoch[0] for c in names)
    state = json.loads((out / "state.json").read_text())
    assert state["config"]["finetune_mix"] == {"codecs": names, "bpp": [0.1, 2.0], "clean_share": 0.5}

    # The matched-bitrate view: per target, the codecs on target and the one that hurts least before and after.
    for m, target in zip(results["matched_bpp"], grid, strict=True):
        rows = {r["codec"]: r for r in results["rows"] if r["bpp"] == target}
        assert set(m["compared"]) | set(m["off_target"]) == set(names)
        for when in ("before", "after"):
            assert set(m[f"least_hurt_{when}"]) <= set(m["compared"])
            if m["compared"]:
                assert m[when] == max(rows[c][when] for c in m["compared"])
    md = (out / "results.md").read_text()
    assert "## Matched bitrate: which codec hurts least" in md
    assert f"| target bpp | {' | '.join(names)} | least hurt before | least hurt after |" in md
    assert f"- Finetuning mix: per image one of {', '.join(names)}; 50% of images left clean" in md
    for name in ("robustness.png", "matched_bpp.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out / "matched_bpp.png") in proc.stdout


def test_dry_run_shows_the_mix_and_available_lists_traditional_codecs(tmp_path):
    proc = run_recipe("det", "--tiny", "--dry-run", "--codecs", "available", "--train-codecs", "jpeg,avif",
                      "--clean-share", "0.5", "--output-dir", str(tmp_path / "plan"))
    swept = re.search(r"^codecs +(.+)$", proc.stdout, re.M).group(1).split(", ")
    assert swept[0] == "jpeg" and {"webp", "avif", "jpeg2000"} <= set(swept)  # Pillow's, on a core install
    assert "finetune mix    per image: a codec drawn from jpeg, avif; bpp 0.1-2 (log-uniform per sample); " \
        "clean share 0.5 (50% of images left uncompressed)" in proc.stdout
    assert "matched_bpp.png" in proc.stdout and not (tmp_path / "plan").exists()


def test_resume_refuses_another_mix(tmp_path):
    # The finetuning mix is part of what a checkpoint means: resuming with another one would not be exact.
    task = get_task("cls")

    class Acc:  # what Protocol._open_state asks of the accelerator, for one process
        is_main_process = True

        def print(self, *args: object) -> None:
            pass

        def wait_for_everyone(self) -> None:
            pass

    def open_state(*argv: str) -> dict:
        args = parse_args(make_parser(task, ""), task, ["--tiny", "--output-dir", str(tmp_path), *argv])
        protocol = Protocol(Acc(), task, None, args, ["jpeg", "jpeg2000"])
        protocol.state = protocol._open_state()
        return protocol.state.data["config"]

    config = open_state("--train-bpp", "0.2,1")
    assert config["finetune_mix"] == {"codecs": ["jpeg", "jpeg2000"], "bpp": [0.2, 1.0], "clean_share": 0.5}
    assert open_state("--train-bpp", "0.2,1", "--resume") == config
    for other in (["--clean-share", "0.25"], ["--train-bpp", "0.1,2"]):
        with pytest.raises(RecipeError, match="different settings.*finetune_mix"):
            open_state("--train-bpp", "0.2,1", "--resume", *other)
    # A state written before the mix was recorded can still be resumed.
    state = json.loads((tmp_path / "state.json").read_text())
    del state["config"]["finetune_mix"]
    (tmp_path / "state.json").write_text(json.dumps(state))
    open_state("--resume")


def test_an_unusable_training_codec_is_a_one_line_error(tmp_path):
    # Checked before the accelerator, the data and the output folder are set up.
    out = tmp_path / "x"
    with pytest.raises(SystemExit) as exit_:
        recipe_entry_point(get_task("cls"), "", ["--tiny", "--train-codecs", "jpeg,nope", "--output-dir", str(out)])
    message = str(exit_.value.code)
    assert message.startswith("error: --train-codecs: unknown codec 'nope'; known codecs: jpeg, ")
    assert "'--train-codecs available'" in message and message.count("jpeg2000") == 1
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ the pieces


def test_finetune_mix_on_a_batch_of_mixed_sizes():
    # Detection batches are lists of images of several sizes; library codecs (JPEG 2000: CPU only) and the torch
    # JPEG each take their groups, and clean samples come back untouched.
    gen = torch.Generator().manual_seed(0)
    sizes = [(32, 40), (40, 32), (32, 40), (24, 24)] * 6
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen) for h, w in sizes]
    aug = Compress(codec=["jpeg", "jpeg2000"], bpp=(0.3, 2.0), p=0.75, grad="none",
                   generator=torch.Generator().manual_seed(1))
    out, bpp, codec = apply_compress(aug, images)
    assert isinstance(out, list) and [o.shape for o in out] == [i.shape for i in images]
    assert bpp.shape == codec.shape == (len(images),) and set(codec.tolist()) == {-1, 0, 1}
    for x, y, b, c in zip(images, out, bpp.tolist(), codec.tolist(), strict=True):
        if c < 0:
            assert torch.equal(x, y) and math.isnan(b)
        else:
            assert not torch.equal(x, y) and 0.2 < b < 3.0

    # A stacked batch gives the same kind of answer, and a transform that reports nothing gives no codecs.
    stacked, bpp, codec = apply_compress(aug, torch.stack(images[:3:2]))
    assert stacked.shape == (2, 3, 32, 40) and codec.shape == (2,)
    assert apply_compress(lambda x: x, images)[2] is None


def test_the_mix_draws_codecs_uniformly_and_keeps_the_clean_share():
    # Compress with a codec mix, the transform form of finetuning's CodecMix: p = 1 - clean_share.
    aug = Compress(codec=["jpeg", "jpeg2000", "augcomp-tiny"], bpp=(0.1, 2.0), p=1 - 0.25, grad="none",
                   generator=torch.Generator().manual_seed(17))
    params = aug.make_params([torch.zeros(6000, 3, 8, 8, dtype=torch.uint8)])
    applied, codec = params["applied"], params["codec"]
    assert float((~applied).float().mean()) == pytest.approx(0.25, abs=0.02)
    shares = torch.bincount(codec[applied], minlength=3).float() / applied.sum()
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.03)
    targets = params["target"]
    assert float(targets.min()) >= 0.1 and float(targets.max()) <= 2.0


def _points(metric: str, values: dict[str, list[float]], achieved: dict[str, list[float]]) -> dict:
    points = {"clean": {"metrics": {metric: 90.0}, "achieved_bpp": None}}
    for codec, vs in values.items():
        for bpp, v, a in zip((0.1, 0.5), vs, achieved[codec], strict=True):
            points[f"{codec}@{bpp:g}"] = {"metrics": {metric: v}, "achieved_bpp": a}
    return points


def test_matched_bitrate_view(tmp_path):
    # JPEG cannot reach 0.1 bpp (it reaches 0.17), so at 0.1 only JPEG 2000 and the neural codec are compared.
    achieved = {"jpeg": [0.17, 0.5], "jpeg2000": [0.1, 0.49], "augcomp-tiny": [0.104, 0.52]}
    before = _points("top1", {"jpeg": [60.0, 80.0], "jpeg2000": [30.0, 70.0], "augcomp-tiny": [40.0, 80.0]}, achieved)
    after = _points("top1", {"jpeg": [75.0, 85.0], "jpeg2000": [70.0, 84.0], "augcomp-tiny": [65.0, 83.0]}, achieved)
    names = ["jpeg", "jpeg2000", "augcomp-tiny"]
    results = build_results(task="cls", title="classification", metric="top1", sweep_before=before,
                            sweep_after=after, codecs=names, grid=[0.1, 0.5], extra={"model": "m"})
    assert [r["at_target"] for r in results["rows"]] == [False, True, True, True, True, True]
    low, mid = results["matched_bpp"]
    assert low == {"bpp": 0.1, "compared": ["jpeg2000", "augcomp-tiny"], "off_target": {"jpeg": 0.17},
                   "least_hurt_before": ["augcomp-tiny"], "before": 40.0,
                   "least_hurt_after": ["jpeg2000"], "after": 70.0}
    assert mid["least_hurt_before"] == ["jpeg", "augcomp-tiny"] and mid["least_hurt_after"] == ["jpeg"]
    assert matched_bpp(results["rows"]) == results["matched_bpp"]
    md = results_markdown(results)
    assert "| 0.1 | [0.170 bpp: 60.00 → 75.00] | 30.00 → 70.00 | 40.00 → 65.00 | augcomp-tiny (40.00) | " \
        "jpeg2000 (70.00) |" in md
    assert "| 0.5 | 80.00 → 85.00 | 70.00 → 84.00 | 80.00 → 83.00 | jpeg, augcomp-tiny (80.00) | jpeg (85.00) |" in md
    paths = write_report(results, tmp_path)
    assert paths["matched_png"].name == "matched_bpp.png" and paths["png"].name == "robustness.png"
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in (paths["png"], paths["matched_png"]))
    # No codec at a rate: nothing is named least hurt.
    alone = build_results(task="cls", title="c", metric="top1", sweep_before=before, sweep_after=after,
                          codecs=["jpeg"], grid=[0.1])
    assert alone["matched_bpp"][0]["least_hurt_before"] == [] and "n/a (no codec at this rate)" in \
        results_markdown(alone)


def test_options_show_the_study_defaults():
    task = get_task("seg")
    parser = make_parser(task, "")
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["codecs"].endswith(f"default: {DEFAULT_CODECS}") and "JPEG 2000" in helps["codecs"]
    assert helps["train_codecs"].endswith("default: the --codecs of the sweep")
    assert helps["clean_share"].endswith("default: 0.5") and "clean images" in helps["clean_share"]
    settings, _ = parse_args(parser, task, [])
    assert settings.codecs == DEFAULT_CODECS and settings.train_codecs is None and settings.clean_share == 0.5
    assert parse_args(parser, task, ["--tiny"]).settings.codecs == DEFAULT_CODECS  # --tiny keeps several codecs
    for bad in (["--clean-share", "1.5"], ["--clean-share", "nan"], ["--train-codecs", " , "]):
        with pytest.raises(SystemExit):
            parse_args(parser, task, bad)


def test_a_codec_whose_extra_is_missing_names_the_extra():
    jpeg = codecs.entry("jpeg")
    codecs.register(codecs.CodecEntry(name="test-needs-extra", builder=jpeg.builder, level_range=(1.0, 100.0),
                                      discrete=False, extra="codecs", requires=("augcomp_no_such_module",)))
    try:
        with pytest.raises(CodecUnavailableError, match=r"pip install 'augcomp\[codecs\]'.*--train-codecs available"):
            resolve_codecs("jpeg,test-needs-extra", option="--train-codecs")
    finally:
        codecs.unregister("test-needs-extra")
