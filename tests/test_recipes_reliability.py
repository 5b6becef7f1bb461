"""The recipes as a user meets them when things go wrong: killed and resumed, pointed at a used, shared, linked or
missing folder, interrupted, offline. Each test runs a recipe (``--tiny``) in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from augcomp.experiment.outdir import RunLock
from augcomp.tasks import PretrainedUnavailableError, get_task

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "AUGCOMP_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.update(extra)
    return env


def recipe(name: str, *args: str | Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "recipes" / f"{name}.py"), *map(str, args)]
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error a failed run printed: one line, no traceback."""
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def _epoch_lines(*procs: subprocess.CompletedProcess) -> list[str]:
    # "finetune epoch 2/3: loss 1.5666, train bpp 0.693 (4 s)", without the timing.
    return [re.sub(r" \(\d+ s\)$", "", line) for p in procs for line in p.stdout.splitlines()
            if re.match(r"(clean|finetune) epoch \d+/\d+:", line)]


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    # Killed after finetuning epoch 1 of 3, then resumed (the clean phase's resume is covered in test_recipes).
    common = ["--tiny", "--epochs", "3", "--bpp-grid", "0.5"]
    full = tmp_path / "full"
    whole = recipe("cls", *common, "--output-dir", full)
    cut = tmp_path / "cut"
    parts = [recipe("cls", *common, "--output-dir", cut, "--stop-after", "finetune:1"),
             recipe("cls", *common, "--output-dir", cut, "--resume")]
    assert "finetune: resuming after epoch 1" in parts[1].stdout
    # Every epoch's loss and achieved training bitrate (drawn by Compress's generator) is the same ...
    assert _epoch_lines(*parts) == _epoch_lines(whole) and len(_epoch_lines(whole)) == 4
    # ... and so are the finetuned weights, bit for bit, and every reported metric.
    a, b = torch.load(full / "finetuned_model.pt"), torch.load(cut / "finetuned_model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    results = [json.loads((d / "results.json").read_text()) for d in (full, cut)]
    for r in results:
        # How long phases took and where coding happened (the resumed run re-encodes what the killed one had cached
        # in memory) describe the runs, not their results.
        r.pop("seconds")
        r.pop("codec_work")
    assert results[0] == results[1]


def test_a_new_run_keeps_an_earlier_run(tmp_path):
    out = tmp_path / "run"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "mine.txt").write_text("keep")
    (out / "state.json").write_text("{}")
    (out / "results.json").write_text('{"old": true}')
    error = one_line_error(recipe("cls", "--tiny", "--output-dir", out, check=False))
    assert "earlier run" in error and "--resume" in error and "--overwrite" in error
    assert (out / "ckpt" / "mine.txt").read_text() == "keep" and (out / "results.json").read_text() == '{"old": true}'

    proc = recipe("cls", "--tiny", "--overwrite", "--stop-after", "clean", "--output-dir", out)
    (previous,) = out.glob("previous-*")
    assert f"moved the earlier run in {out} to {previous}" in proc.stdout
    assert (previous / "ckpt" / "mine.txt").read_text() == "keep"
    assert (previous / "results.json").read_text() == '{"old": true}' and not (out / "results.json").exists()
    state = json.loads((out / "state.json").read_text())
    assert state["phases"]["clean"]["status"] == "done" and len(state["invocations"]) == 1


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):  # as a running recipe holds it
        error = one_line_error(recipe("cls", "--tiny", "--output-dir", out, check=False))
    assert f"another run is using {out}" in error and f"pid {os.getpid()}" in error
    assert sorted(p.name for p in out.iterdir()) == [".augcomp.lock"]


def test_nothing_is_written_outside_the_output_dir(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "run"
    out.mkdir()
    (out / "ckpt").symlink_to(elsewhere)
    error = one_line_error(recipe("cls", "--tiny", "--output-dir", out, check=False))
    assert f"{out / 'ckpt'} is a symbolic link" in error
    (out / "ckpt").unlink()
    (elsewhere / "results.json").write_text("mine")
    (out / "results.json").symlink_to(elsewhere / "results.json")
    assert "symbolic link" in one_line_error(recipe("cls", "--tiny", "--output-dir", out, check=False))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["results.json"]
    assert (elsewhere / "results.json").read_text() == "mine"

    empty = recipe("cls", "--tiny", "--output-dir", "", check=False)
    assert empty.returncode == 2 and "--output-dir is empty" in empty.stderr
    assert not (ROOT / "state.json").exists() and not (ROOT / ".augcomp.lock").exists()


def test_run_files_follow_the_umask(tmp_path):
    out = tmp_path / "run"
    recipe("cls", "--tiny", "--stop-after", "clean", "--output-dir", out, umask=0o002)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"state.json", "clean_model.pt", "progress.json", "model.safetensors"}
    assert {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == \
        {p.relative_to(out).as_posix(): oct(0o664) for p in files}


def test_a_missing_dataset_is_a_one_line_error(tmp_path):
    out = tmp_path / "run"
    error = one_line_error(recipe("cls", "--data-root", tmp_path / "nowhere", "--output-dir", out, check=False))
    assert f"--data-root {tmp_path / 'nowhere'} is not a folder" in error
    assert not out.exists()  # refused before anything was written
    (tmp_path / "empty").mkdir()
    error = one_line_error(recipe("seg", "--data-root", tmp_path / "empty", "--output-dir", out, check=False))
    assert error.startswith(f"error: --data-root {tmp_path / 'empty'}: ")


def test_ctrl_c_ends_with_a_hint_to_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "recipes" / "cls.py"), "--tiny", "--clean-epochs", "50", "--output-dir",
           str(out)]
    # A runner started in the background (nohup, `&` in a script) ignores SIGINT, and children inherit that; restore
    # the default so that the recipe sees Ctrl-C as a terminal would deliver it.
    proc = subprocess.Popen(cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (out / "state.json").is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines() == ["interrupted; rerun with --resume to continue"]


OFFLINE_SCRIPT = """
import os, sys, time
import timm  # imports huggingface_hub, which reads HF_HUB_OFFLINE only now
from augcomp.tasks import PretrainedUnavailableError
from augcomp.tasks.classification import create_timm
os.environ.update(dict(a.split("=") for a in sys.argv[1:]))
start = time.time()
try:
    create_timm("resnet10t", pretrained=True)
except PretrainedUnavailableError as e:
    print(f"{time.time() - start:.3f}", e)
"""


@pytest.mark.parametrize("offline", ["AUGCOMP_OFFLINE=1", "HF_HUB_OFFLINE=1"])
def test_offline_pretrained_request_fails_fast(tmp_path, offline):
    # The variable is set after huggingface_hub is imported (as in a notebook), when HF_HUB_OFFLINE no longer helps.
    offline_vars = ("AUGCOMP_OFFLINE", "HF_HUB_OFFLINE")
    env = {k: v for k, v in _env(HF_HOME=str(tmp_path / "hf")).items() if k not in offline_vars}
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, offline], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seconds, message = proc.stdout.strip().split(" ", 1)
    assert float(seconds) < 2.0  # was 47 s of retries
    assert offline in message and "timm/resnet10t" in message and "--checkpoint PATH" in message


CACHED_SCRIPT = """
import os, time
from pathlib import Path
import timm, torch
from safetensors.torch import save_file
repo = Path(os.environ["HF_HOME"]) / "hub" / "models--timm--resnet10t.c3_in1k"
(repo / "refs").mkdir(parents=True)
(repo / "refs" / "main").write_text("0123abcd")
(repo / "snapshots" / "0123abcd").mkdir(parents=True)
reference = timm.create_model("resnet10t")
save_file(dict(reference.state_dict()), str(repo / "snapshots" / "0123abcd" / "model.safetensors"))
from augcomp.tasks.classification import create_timm
start = time.time()
model = create_timm("resnet10t", pretrained=True)
same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
print(f"{time.time() - start:.3f}", same)
"""


def test_offline_pretrained_weights_load_from_the_cache(tmp_path):
    env = {k: v for k, v in _env(HF_HOME=str(tmp_path / "hf")).items() if k != "HF_HUB_OFFLINE"}
    proc = subprocess.run([sys.executable, "-c", CACHED_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seconds, same = proc.stdout.strip().split()
    assert same == "True" and float(seconds) < 5.0


def test_offline_torchvision_weights_fail_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGCOMP_OFFLINE", "1")
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        task = get_task("det")
        from augcomp.experiment import make_parser, parse_args

        settings, _ = parse_args(make_parser(task, ""), task, ["--tiny", "--model",
                                                               "fasterrcnn_mobilenet_v3_large_320_fpn"])
        data = task.build_data(settings, None)
        start = time.time()
        with pytest.raises(PretrainedUnavailableError, match=r"AUGCOMP_OFFLINE=1 is set.*--clean-epochs"):
            task.build_model(settings, data, pretrained=True)
        assert time.time() - start < 2.0
    finally:
        torch.hub.set_dir(hub)
