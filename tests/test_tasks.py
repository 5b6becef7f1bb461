"""Tasks (models, losses, predictions, metrics) and the shared experiment machinery (arguments, codecs, loops,
report, resume state, atomic writes)."""

from __future__ import annotations

import json
from pathlib import Path

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
    warmup_cosine,
    write_report,
)
from augcomp.experiment.codecs import CodecUnavailableError
from augcomp.experiment.io import atomic_write_json, replace_dir, resolve_dir
from augcomp.tasks import PretrainedUnavailableError, get_task, load_checkpoint, to_float


def tiny_args(task, *extra):
    return parse_args(make_parser(task, ""), task, ["--tiny", *extra])


# ------------------------------------------------------------------------------------------------ tasks


@pytest.mark.parametrize("name", ["cls", "det", "seg"])
def test_task_trains_predicts_and_scores(name):
    torch.manual_seed(0)
    task = get_task(name)
    args = tiny_args(task)
    data = task.build_data(args)
    assert data.synthetic and len(data.train) == args.train_size and len(data.val) == args.val_size
    model = task.build_model(args, data, pretrained=False)
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
    metric = task.metric(args, data)
    task.update(metric, out)
    values = task.compute(metric)
    headline = task.headline(args)
    assert headline in values and 0.0 <= values[headline] <= 100.0


def test_classification_metric_is_exact():
    task = get_task("cls")
    args = tiny_args(task)
    data = task.build_data(args)
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.nn.functional.one_hot(labels, data.num_classes).float()
    logits[3, 0] = 2.0  # one miss at top-1, a hit at top-5
    metric = task.metric(args, data)
    task.update(metric, {"logits": logits, "target": labels})
    values = task.compute(metric)
    assert values["top1"] == pytest.approx(75.0)
    assert values["top5"] == pytest.approx(100.0)


def test_segmentation_metric_ignores_255():
    task = get_task("seg")
    args = tiny_args(task)
    data = task.build_data(args)
    target = torch.tensor([[[0, 1], [2, 255]]], dtype=torch.uint8)
    pred = torch.tensor([[[0, 1], [2, 3]]], dtype=torch.uint8)  # the ignored pixel is "wrong"
    metric = task.metric(args, data)
    task.update(metric, {"pred": pred, "target": target})
    values = task.compute(metric)
    assert values["miou"] == pytest.approx(100.0) and values["pixel_acc"] == pytest.approx(100.0)
    metric = task.metric(args, data)
    task.update(metric, {"pred": torch.tensor([[[0, 1], [1, 3]]], dtype=torch.uint8), "target": target})
    assert task.compute(metric)["miou"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)


def test_detection_metric_is_coco_map():
    task = get_task("det")
    args = tiny_args(task)
    assert task.headline(args) == "map_50"
    data = task.build_data(args)
    boxes = torch.tensor([[2.0, 2.0, 20.0, 20.0], [25.0, 5.0, 45.0, 30.0]])
    labels = torch.tensor([1, 2])
    perfect = [{"pred": {"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": labels},
                "target": {"boxes": boxes, "labels": labels}}]
    metric = task.metric(args, data)
    task.update(metric, perfect)
    values = task.compute(metric)
    assert values["map"] == pytest.approx(100.0) and values["map_50"] == pytest.approx(100.0)
    shifted = [{"pred": {"boxes": boxes + torch.tensor([6.0, 0.0, 6.0, 0.0]), "scores": torch.tensor([0.9, 0.8]),
                         "labels": labels},
                "target": {"boxes": boxes, "labels": labels}}]
    metric = task.metric(args, data)
    task.update(metric, shifted)
    values = task.compute(metric)
    assert values["map_50"] == pytest.approx(100.0) and values["map"] < 60.0


def test_torchvision_detector_by_name():
    task = get_task("det")
    args = tiny_args(task, "--model", "fasterrcnn_mobilenet_v3_large_320_fpn")
    data = task.build_data(args)
    assert not task.has_pretrained(args, data)  # 5 classes: COCO weights do not fit
    model = task.build_model(args, data, pretrained=False)
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
    args = tiny_args(task)
    data = task.build_data(args)
    with pytest.raises(PretrainedUnavailableError, match=r"'resnet10t'.*--checkpoint PATH.*--clean-epochs"):
        task.build_model(args, data, pretrained=True)
    task.build_model(args, data, pretrained=False)  # random weights only when asked for


def test_load_checkpoint_accepts_bare_and_wrapped_state_dicts(tmp_path):
    task = get_task("cls")
    args = tiny_args(task)
    data = task.build_data(args)
    a, b = task.build_model(args, data, False), task.build_model(args, data, False)
    torch.save(a.state_dict(), tmp_path / "wrapper.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in a.net.state_dict().items()}}, tmp_path / "inner.pt")
    for name in ("wrapper.pt", "inner.pt"):
        load_checkpoint(b, tmp_path / name)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    other = tiny_args(task, "--model-kwargs", '{"channels": [16, 32, 64, 128], "stem_width": 16}')
    with pytest.raises(RuntimeError, match="does not fit"):
        load_checkpoint(task.build_model(other, data, False), tmp_path / "wrapper.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(b, tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------------ arguments


def test_arguments_fill_defaults_by_data_kind():
    task = get_task("seg")
    synthetic = parse_args(make_parser(task, ""), task, [])
    assert synthetic.bpp_grid == [0.1, 0.2, 0.5, 1.0, 2.0] and synthetic.codecs == "jpeg"
    assert synthetic.train_bpp == (0.1, 2.0) and synthetic.output_dir == "results/seg"
    assert synthetic.clean_epochs > 0 and synthetic.head_channels == 64
    real = parse_args(make_parser(task, ""), task, ["--data-root", "/data/ade", "--epochs", "3"])
    assert real.train_split == "training" and real.val_split == "validation" and real.epochs == 3
    assert real.clean_epochs == 0 and real.image_size == 512
    tiny = tiny_args(task, "--train-size", "10")
    assert tiny.train_size == 10 and tiny.val_size == 24 and tiny.bpp_grid == [0.2, 1.0]
    assert parse_bpp_range("0.3") == 0.3 and parse_bpp_range("0.1, 2") == (0.1, 2.0)
    assert parse_grid("1,0.1,0.1") == [0.1, 1.0]
    for bad in (["--bpp-grid", "0,1"], ["--train-bpp", "2,1"], ["--stop-after", "sweep_before:1"],
                ["--stop-after", "nonsense"], ["--tiny", "--data-root", "/x"]):
        with pytest.raises(SystemExit):
            parse_args(make_parser(task, ""), task, bad)


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
