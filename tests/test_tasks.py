"""Tasks (models, losses, predictions, metrics) and the shared experiment machinery (arguments, codecs, loops,
report, resume state, atomic writes)."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from augcomp.data import collate
from augcomp.experiment import (
    RunState,
    build_results,
    compress_images,
    make_parser,
    parse_args,
    parse_bpp_range,
    parse_grid,
    recovery,
    resolve_codecs,
    results_markdown,
    rng,
    warmup_cosine,
    write_report,
)
from augcomp.experiment.codecs import CodecUnavailableError
from augcomp.experiment.errors import OutputDirError
from augcomp.experiment.io import atomic_torch_save, atomic_write_json, replace_dir, resolve_dir
from augcomp.experiment.outdir import RunLock, claim_output_dir
from augcomp.tasks import TINY, PretrainedUnavailableError, Settings, get_task, load_checkpoint, to_float


def tiny_settings(task, *extra):
    settings, options = parse_args(make_parser(task, ""), task, ["--tiny", *extra])
    assert options.data_root is None and options.tiny
    return settings


# ------------------------------------------------------------------------------------------------ tasks


@pytest.mark.parametrize("name", ["cls", "det", "seg"])
def test_task_trains_predicts_and_scores(name):
    torch.manual_seed(0)
    task = get_task(name)
    settings = tiny_settings(task)
    data = task.build_data(settings, None)
    assert data.synthetic and len(data.train) == settings.train_size and len(data.val) == settings.val_size
    model = task.build_model(settings, data, pretrained=False)
    batch = collate([data.train[i] for i in range(4)])
    images = to_float(batch["image"])
    model.train()
    loss = task.loss(model, images, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        out = task.predict(model, images, batch)
    metric = task.metric(settings, data)
    task.update(metric, out)
    values = task.compute(metric)
    headline = task.headline(settings)
    assert headline in values and 0.0 <= values[headline] <= 100.0


def test_classification_metric_is_exact():
    task = get_task("cls")
    settings = tiny_settings(task)
    data = task.build_data(settings, None)
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.nn.functional.one_hot(labels, data.num_classes).float()
    logits[3, 0] = 2.0  # one miss at top-1, a hit at top-5
    metric = task.metric(settings, data)
    task.update(metric, {"logits": logits, "target": labels})
    values = task.compute(metric)
    assert values["top1"] == pytest.approx(75.0)
    assert values["top5"] == pytest.approx(100.0)


def test_segmentation_metric_ignores_255():
    task = get_task("seg")
    settings = tiny_settings(task)
    data = task.build_data(settings, None)
    target = torch.tensor([[[0, 1], [2, 255]]], dtype=torch.uint8)
    pred = torch.tensor([[[0, 1], [2, 3]]], dtype=torch.uint8)  # the ignored pixel is "wrong"
    metric = task.metric(settings, data)
    task.update(metric, {"pred": pred, "target": target})
    values = task.compute(metric)
    assert values["miou"] == pytest.approx(100.0) and values["pixel_acc"] == pytest.approx(100.0)
    metric = task.metric(settings, data)
    task.update(metric, {"pred": torch.tensor([[[0, 1], [1, 3]]], dtype=torch.uint8), "target": target})
    assert task.compute(metric)["miou"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)


def test_detection_metric_is_coco_map():
    task = get_task("det")
    settings = tiny_settings(task)
    assert task.headline(settings) == "map_50"
    data = task.build_data(settings, None)
    boxes = torch.tensor([[2.0, 2.0, 20.0, 20.0], [25.0, 5.0, 45.0, 30.0]])
    labels = torch.tensor([1, 2])
    perfect = [{"pred": {"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": labels},
                "target": {"boxes": boxes, "labels": labels}}]
    metric = task.metric(settings, data)
    task.update(metric, perfect)
    values = task.compute(metric)
    assert values["map"] == pytest.approx(100.0) and values["map_50"] == pytest.approx(100.0)
    shifted = [{"pred": {"boxes": boxes + torch.tensor([6.0, 0.0, 6.0, 0.0]), "scores": torch.tensor([0.9, 0.8]),
                         "labels": labels},
                "target": {"boxes": boxes, "labels": labels}}]
    metric = task.metric(settings, data)
    task.update(metric, shifted)
    values = task.compute(metric)
    assert values["map_50"] == pytest.approx(100.0) and values["map"] < 60.0


def test_torchvision_detector_by_name():
    task = get_task("det")
    settings = tiny_settings(task, "--model", "fasterrcnn_mobilenet_v3_large_320_fpn")
    data = task.build_data(settings, None)
    assert not task.has_pretrained(settings, data)  # 5 classes: COCO weights do not fit
    model = task.build_model(settings, data, pretrained=False)
    model.eval()
    batch = collate([data.val[0], data.val[1]])
    with torch.no_grad():
        out = task.predict(model, to_float(batch["image"]), batch)
    assert len(out) == 2 and set(out[0]["pred"]) == {"boxes", "scores", "labels"}


def test_pretrained_download_failure_is_a_clear_error(monkeypatch):
    import timm

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    task = get_task("cls")
    settings = tiny_settings(task)
    data = task.build_data(settings, None)
    with pytest.raises(PretrainedUnavailableError, match=r"'resnet10t'.*--checkpoint PATH.*--clean-epochs"):
        task.build_model(settings, data, pretrained=True)
    task.build_model(settings, data, pretrained=False)  # random weights only when asked for


def test_load_checkpoint_accepts_bare_and_wrapped_state_dicts(tmp_path):
    task = get_task("cls")
    settings = tiny_settings(task)
    data = task.build_data(settings, None)
    a, b = task.build_model(settings, data, False), task.build_model(settings, data, False)
    torch.save(a.state_dict(), tmp_path / "wrapper.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in a.net.state_dict().items()}}, tmp_path / "inner.pt")
    for name in ("wrapper.pt", "inner.pt"):
        load_checkpoint(b, tmp_path / name)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    other = tiny_settings(task, "--model-kwargs", '{"channels": [16, 32, 64, 128], "stem_width": 16}')
    with pytest.raises(RuntimeError, match="does not fit"):
        load_checkpoint(task.build_model(other, data, False), tmp_path / "wrapper.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(b, tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------------ arguments


def test_arguments_fill_defaults_by_data_kind():
    task = get_task("seg")
    synthetic, options = parse_args(make_parser(task, ""), task, [])
    assert synthetic.bpp_grid == (0.1, 0.2, 0.5, 1.0, 2.0) and synthetic.codecs == "jpeg,jpeg2000,avif,augcomp-tiny"
    assert synthetic.train_bpp == (0.1, 2.0) and options.output_dir == "results/seg" and options.task == "seg"
    assert synthetic.clean_epochs > 0 and synthetic.head_channels == 64 and options.data_root is None
    real, options = parse_args(make_parser(task, ""), task, ["--data-root", "/data/ade", "--epochs", "3", "--resume"])
    assert real.train_split == "training" and real.val_split == "validation" and real.epochs == 3
    assert real.clean_epochs == 0 and real.image_size == 512
    assert options.data_root == "/data/ade" and options.resume and not options.overwrite
    tiny = tiny_settings(task, "--train-size", "10")
    assert tiny.train_size == 10 and tiny.val_size == 24 and tiny.bpp_grid == (0.2, 1.0)
    assert parse_bpp_range("0.3") == 0.3 and parse_bpp_range("0.1, 2") == (0.1, 2.0)
    assert parse_grid("1,0.1,0.1") == [0.1, 1.0]
    for bad in (["--bpp-grid", "0,1"], ["--train-bpp", "2,1"], ["--stop-after", "sweep_before:1"],
                ["--stop-after", "nonsense"], ["--tiny", "--data-root", "/x"], ["--output-dir", ""],
                ["--output-dir", " "], ["--resume", "--overwrite"], ["--epochs", "-1"], ["--clean-share", "2"],
                ["--grad-accum", "0"]):
        with pytest.raises(SystemExit):
            parse_args(make_parser(task, ""), task, bad)


@pytest.mark.parametrize("name", ["cls", "det", "seg"])
def test_settings_presets_are_what_a_run_uses(name, tmp_path):
    task = get_task(name)
    synthetic, real = task.settings(True), task.settings(False)
    # One frozen settings class per task, distinct from the other tasks' and from the base.
    assert type(synthetic) is type(real) and type(synthetic) is not Settings
    assert type(synthetic) not in {type(get_task(n).settings(True)) for n in ("cls", "det", "seg") if n != name}
    with pytest.raises(dataclasses.FrozenInstanceError):
        synthetic.epochs = 3  # type: ignore[misc]
    for argv, preset in (([], synthetic), (["--data-root", str(tmp_path)], real), (["--tiny"], synthetic.tiny())):
        settings, options = parse_args(make_parser(task, ""), task, argv)
        assert settings == preset and type(settings) is type(preset)
        # Options that are not settings stay out of them, and the other way round.
        assert not {f.name for f in dataclasses.fields(options)} & set(preset.as_dict())
    assert synthetic.tiny().as_dict() == {**synthetic.as_dict(), **TINY}
    given, _ = parse_args(make_parser(task, ""), task, ["--tiny", "--epochs", "3", "--bpp-grid", "0.5"])
    assert given == dataclasses.replace(synthetic.tiny(), epochs=3, bpp_grid=(0.5,))


def test_help_shows_the_defaults_a_run_uses():
    def help_text(name: str) -> str:
        task = get_task(name)
        return " ".join(make_parser(task, "").format_help().split())

    cls, det, seg = help_text("cls"), help_text("det"), help_text("seg")
    assert "--image-size IMAGE_SIZE training and evaluation image side; default: 64 (synthetic), 224 (--data-root)" \
        in cls
    assert "default: 3000 (synthetic), all (--data-root)" in cls and "--weight-decay WEIGHT_DECAY" in cls
    assert "AdamW weight decay (both training phases); default: 0.05" in cls
    assert "default: resnet10t (synthetic), fasterrcnn_resnet50_fpn_v2 (--data-root)" in det
    assert "--fpn-channels FPN_CHANNELS FPN and head width of the timm-backbone FCOS; default: 64 (synthetic), 256 " \
        "(--data-root)" in det
    assert "default: map_50 (synthetic), map (--data-root)" in det and "default: train2017" in det
    assert "--head-channels HEAD_CHANNELS width of the FPN head; default: 64 (synthetic), 256 (--data-root)" in seg
    assert "--bpp-grid B1,B2,... target bitrates of the sweep; default: 0.1,0.2,0.5,1,2" in seg
    assert "--tiny uses --train-size 48, --val-size 24" in seg and "default: results/seg" in seg
    # Every setting shows its default: the values are no longer hidden behind --dry-run.
    for name in ("cls", "det", "seg"):
        task = get_task(name)
        helps = {a.dest: a.help for a in make_parser(task, "")._actions}
        for f in dataclasses.fields(task.settings(True)):
            assert "; default: " in helps[f.name], f.name


# ------------------------------------------------------------------------------------------------ codecs, loops


def test_resolve_codecs():
    assert resolve_codecs("jpeg") == (["jpeg"], {})
    names, skipped = resolve_codecs("available")
    assert names[0] == "jpeg" and not set(names) & set(skipped)
    with pytest.raises(CodecUnavailableError, match="unknown codec"):
        resolve_codecs("jpeg,nope")


def test_compress_images_groups_mixed_sizes():
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=gen),
              torch.randint(0, 256, (3, 24, 40), dtype=torch.uint8, generator=gen),
              torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=gen)]
    out, bpp = compress_images(images, "jpeg", 1.0)
    assert [o.shape for o in out] == [i.shape for i in images] and bpp.shape == (3,)
    batched, bpp2 = compress_images(torch.stack([images[0], images[2]]), "jpeg", 1.0)
    # Compression is per image: grouping does not change the result.
    assert torch.equal(out[0], batched[0]) and torch.equal(out[2], batched[1])
    assert torch.allclose(bpp[[0, 2]], bpp2)
    again, _ = compress_images(images, "jpeg", 1.0)
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True))  # deterministic


def test_warmup_cosine():
    f = warmup_cosine(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0) and f(500) == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------------ report


def test_recovery():
    assert recovery(90.0, 30.0, 75.0) == pytest.approx(0.75)
    assert recovery(90.0, 30.0, 20.0) == pytest.approx(-1 / 6)
    assert recovery(90.0, 90.0, 91.0) is None
    assert recovery(90.0, 89.8, 91.0, min_drop=0.5) is None
    assert recovery(90.0, float("nan"), 50.0) is None


def _sweep(metric, values):
    points = {"clean": {"metrics": {metric: values[0], "other": 1.0}, "achieved_bpp": None}}
    for bpp, v in zip((0.1, 1.0), values[1:], strict=True):
        points[f"jpeg@{bpp:g}"] = {"metrics": {metric: v, "other": 2.0}, "achieved_bpp": bpp * 1.5}
    return points


def test_report_schema_and_files(tmp_path):
    results = build_results(task="cls", title="classification", metric="top1",
                            sweep_before=_sweep("top1", [90.0, 20.0, 88.0]),
                            sweep_after=_sweep("top1", [89.0, 60.0, 89.0]),
                            codecs=["jpeg"], grid=[0.1, 1.0], min_drop=0.5, extra={"model": "m"})
    assert {"task", "metric", "clean", "clean_after", "rows"} <= set(results)
    assert results["clean"] == 90.0 and results["clean_after"] == 89.0 and results["model"] == "m"
    low, high = results["rows"]
    assert {"codec", "bpp", "achieved_bpp", "before", "after", "recovery"} <= set(low)
    assert low["codec"] == "jpeg" and low["bpp"] == 0.1 and low["achieved_bpp"] == pytest.approx(0.15)
    assert low["recovery"] == pytest.approx(40 / 70) and high["recovery"] == pytest.approx(0.5)
    paths = write_report(results, tmp_path)
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(results))
    md = paths["md"].read_text()
    assert "| jpeg | 0.1 | 0.150 | 20.00 | 60.00 | 57% |" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "n/a" in results_markdown({**results, "rows": [{**low, "recovery": None}]})


# ------------------------------------------------------------------------------------------------ state, files


def test_run_state_round_trip(tmp_path):
    path = tmp_path / "state.json"
    state = RunState.fresh(path, {"task": "cls"})
    state.begin_invocation(resumed=False)
    state.set("clean", status="done", epochs_done=3)
    state.note("clean")
    loaded = RunState.load(path)
    assert loaded.done("clean") and not loaded.done("finetune")
    assert loaded.phase("clean")["epochs_done"] == 3
    assert loaded.data["invocations"][0]["ran"] == ["clean"]
    reader = RunState.load(path, write=False)
    reader.set("finetune", status="done")
    assert not RunState.load(path).done("finetune")  # only the writing (main) process saves
    atomic_write_json(tmp_path / "bad.json", {"hello": 1})
    with pytest.raises(ValueError, match="not a state file"):
        RunState.load(tmp_path / "bad.json")


def test_atomic_writes_leave_no_temporaries(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_replace_dir_swaps_whole_folders(tmp_path):
    def folder(name: str, text: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "f.txt").write_text(text)
        return d

    dst = tmp_path / "ckpt"
    replace_dir(folder("t1", "one"), dst)
    replace_dir(folder("t2", "two"), dst)
    assert (dst / "f.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    # A crash between the two renames leaves only the old copy; it is still found.
    dst.rename(tmp_path / "ckpt.old")
    assert resolve_dir(dst) == tmp_path / "ckpt.old"
    assert resolve_dir(tmp_path / "none") is None


def test_random_states_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(5)
    state = rng.capture({"augment": gen})
    rng.save(state, tmp_path / "rng.pt")

    def draw():
        return (random.random(), float(np.random.rand()), float(torch.rand(())), float(torch.rand((), generator=gen)))

    first = draw()
    draw()
    assert rng.restore(rng.load(tmp_path / "rng.pt"), {"augment": gen, "other": torch.Generator()}) == ["other"]
    assert draw() == first


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "m.pt")
    finally:
        os.umask(old)
    # mkstemp makes 0600 files; the umask (not mkstemp) decides.
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o640


def test_writes_refuse_links_out_of_the_output_dir(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "results.json").write_text("mine")
    (out / "ckpt").symlink_to(elsewhere)
    (out / "results.json").symlink_to(elsewhere / "results.json")
    with pytest.raises(OutputDirError, match="symbolic link"):
        atomic_write_json(out / "ckpt" / "progress.json", {}, root=out)
    with pytest.raises(OutputDirError, match="symbolic link"):
        write_report({"rows": []}, out)
    with pytest.raises(OutputDirError, match="symbolic link"):
        replace_dir(tmp_path, out / "ckpt" / "clean", root=out)
    with pytest.raises(OutputDirError, match="outside"):
        atomic_write_json(tmp_path / "x.json", {}, root=out)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["results.json"]
    assert (elsewhere / "results.json").read_text() == "mine"
    with pytest.raises(OutputDirError, match="symbolic link"):
        claim_output_dir(out, resume=True, overwrite=False)


def test_claim_output_dir_keeps_earlier_runs(tmp_path):
    out = tmp_path / "run"
    lock, note = claim_output_dir(out, resume=False, overwrite=False)  # a new folder
    lock.release()
    assert note is None
    (out / "ckpt").mkdir()
    (out / "ckpt" / "mine.txt").write_text("keep")
    (out / "results.json").write_text("{}")
    with pytest.raises(OutputDirError, match=r"earlier run \(ckpt, results.json\).*--overwrite"):
        claim_output_dir(out, resume=False, overwrite=False)
    with pytest.raises(OutputDirError, match="--overwrite"):
        claim_output_dir(out, resume=True, overwrite=False)  # --resume without a state: nothing to continue
    assert (out / "ckpt" / "mine.txt").read_text() == "keep"
    (out / "state.json").write_text("{}")
    with pytest.raises(OutputDirError, match="continue it with --resume"):
        claim_output_dir(out, resume=False, overwrite=False)
    lock, _ = claim_output_dir(out, resume=True, overwrite=False)
    with pytest.raises(OutputDirError, match=f"another run is using {out}.*pid {os.getpid()}"):
        claim_output_dir(out, resume=True, overwrite=False)
    lock.release()
    lock, note = claim_output_dir(out, resume=False, overwrite=True)
    lock.release()
    (previous,) = out.glob("previous-*")
    assert note and str(previous) in note
    assert (previous / "ckpt" / "mine.txt").read_text() == "keep" and (previous / "state.json").is_file()
    assert not (out / "ckpt").exists() and not (out / "results.json").exists()
    with RunLock(out):
        pass  # released again


def test_expected_failures_end_with_one_line(monkeypatch, capsys):
    from augcomp.experiment import recipe

    task = get_task("cls")
    disk = [  # the environment failed: the message says how to go on
        (OSError(errno.ENOSPC, "No space left on device", "/out/ckpt/model.safetensors"), "No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/out/state.json"), "cannot write /out/state.json"),
        (PermissionError(errno.EACCES, "Permission denied", "/out/results.json"), "Permission denied"),
    ]
    mistakes = [(OutputDirError("another run is using /out"), "another run is using /out"),
                (PretrainedUnavailableError("offline, no weights"), "offline, no weights")]
    for exc, text in disk + mistakes:
        def fail(*a, exc=exc, **k):
            raise exc

        monkeypatch.setattr(recipe, "run_recipe", fail)
        with pytest.raises(SystemExit) as info:
            recipe.recipe_entry_point(task, "")
        message = str(info.value.code)
        assert message.startswith("error: ") and text in message and "\n" not in message, message
        assert ("--resume" in message) == ((exc, text) in disk)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "run_recipe", interrupted)
    with pytest.raises(SystemExit) as info:
        recipe.recipe_entry_point(task, "")
    assert info.value.code == 130 and "interrupted; rerun with --resume" in capsys.readouterr().err

    def bug(*a, **k):
        raise ZeroDivisionError("a bug keeps its traceback")

    monkeypatch.setattr(recipe, "run_recipe", bug)
    with pytest.raises(ZeroDivisionError):
        recipe.recipe_entry_point(task, "")
