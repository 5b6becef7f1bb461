"""The recipes meeting real data and real launchers: bad files in either split stop a run before any metric (or are
left out and listed), every file a run writes is preserved by ``--overwrite``, errors reach the user once as one line
under ``python`` and under ``accelerate launch`` (one and two processes), and a run prints its plan first and its
results table last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from augcomp.experiment import claim_output_dir, plan, write_report
from augcomp.experiment.recipe import recipe_entry_point, wrapped
from augcomp.experiment.report import results_table
from augcomp.experiment.runfiles import REPORT_FILES, RUN_FILE_TABLE
from augcomp.tasks import get_task
from tests.test_data_checks import make_ade
from tests.test_recipes_reliability import _env, one_line_error, recipe

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"
SEG_ON_ADE = ["--model", "resnet10t", "--clean-epochs", "1", "--epochs", "0", "--image-size", "32", "--batch-size",
              "2", "--eval-batch-size", "2", "--bpp-grid", "0.5", "--codecs", "jpeg", "--head-channels", "8"]


# ------------------------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize(("split", "what"), [("validation", "mask"), ("training", "image")])
def test_a_bad_file_stops_the_run_before_any_metric(tmp_path, split, what):
    base = make_ade(tmp_path / "ade")
    if what == "mask":  # same aspect, half the size: resized and cropped it would silently misalign the labels
        from tests.test_data_checks import _mask

        victim = base / "annotations" / split / "s1.png"
        _mask(24, 32).save(victim)
    else:
        victim = base / "images" / split / "s1.jpg"
        victim.write_bytes(victim.read_bytes()[:300])
    out = tmp_path / "out"
    proc = recipe("seg", "--data-root", base.parent, *SEG_ON_ADE, "--output-dir", out, check=False)
    error = one_line_error(proc)
    assert error.startswith(f"error: {victim}: ") and "--skip-bad-files" in error
    assert "miou" not in proc.stdout and "epoch" not in proc.stdout and not (out / "results.json").exists()


def test_skip_bad_files_leaves_them_out_and_lists_them(tmp_path):
    base = make_ade(tmp_path / "ade")
    from tests.test_data_checks import _mask

    bad_mask = base / "annotations" / "validation" / "s0.png"
    _mask(64, 48).save(bad_mask)
    empty = base / "images" / "training" / "s2.jpg"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    proc = recipe("seg", "--data-root", base.parent, *SEG_ON_ADE, "--skip-bad-files", "--output-dir", out)
    results = json.loads((out / "results.json").read_text())
    assert results["train_size"] == 2 and results["val_size"] == 2
    assert [(b["split"], b["path"]) for b in results["bad_files"]] == [("train", str(empty)), ("val", str(bad_mask))]
    assert "mask is 48x64 but its image s0.jpg is 64x48" in results["bad_files"][1]["fault"]
    assert f"data: left out (val) {bad_mask}: mask is 48x64" in proc.stdout
    assert "2 unusable file(s)" in (out / "results.md").read_text()


# ------------------------------------------------------------------------------------------------ run files


def test_overwrite_preserves_every_file_a_run_writes(tmp_path):
    # From the table, not a fixture: every entry (report files included) of an earlier run is moved aside.
    out = tmp_path / "run"
    out.mkdir()
    for f in RUN_FILE_TABLE:
        if "." in f.name:
            (out / f.name).write_text(f.name)
        else:
            (out / f.name).mkdir()
            (out / f.name / "inside").write_text(f.name)
    lock, note = claim_output_dir(out, resume=False, overwrite=True)
    lock.release()
    (previous,) = out.glob("previous-*")
    assert sorted(p.name for p in out.iterdir()) == sorted([".augcomp.lock", previous.name])
    assert sorted(p.name for p in previous.iterdir()) == sorted(f.name for f in RUN_FILE_TABLE)
    assert note == f"moved the earlier run in {out} to {previous}"


def test_the_report_writes_exactly_its_files_of_the_table(tmp_path):
    rows = [{"codec": "jpeg", "bpp": 0.5, "achieved_bpp": 0.5, "at_target": True, "before": 40.0, "after": 45.0,
             "recovery": 0.5, "before_metrics": {}, "after_metrics": {}}]
    results = {"task": "seg", "metric": "miou", "clean": 50.0, "clean_after": 49.0, "rows": rows}
    paths = write_report(results, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in REPORT_FILES.values())
    assert {k: p.name for k, p in paths.items()} == {k: f.name for k, f in REPORT_FILES.items()}


def test_a_run_writes_only_files_of_the_table_prints_its_plan_first_and_its_table_last(tmp_path):
    out = tmp_path / "run"
    proc = recipe("seg", "--tiny", "--codecs", "jpeg", "--bpp-grid", "0.5", "--epochs", "0", "--output-dir", out)
    names = {p.name for p in out.iterdir()}
    assert names - {".augcomp.lock"} <= {f.name for f in RUN_FILE_TABLE}
    assert {f.name for f in REPORT_FILES.values()} <= names
    lines = proc.stdout.splitlines()
    # The plan, with the output folder, before any work; phases announced as they start.
    assert lines[1] == "plan" and any(line.strip().startswith(f"output          {out}") for line in lines[:20])
    assert lines.index("[1/5] clean model") > lines.index("plan")
    assert "[4/5] sweep after finetuning: 2 points x 24 images" in lines
    # The results table of results.md, at the end.
    results = json.loads((out / "results.json").read_text())
    table = results_table(results)
    assert table[0] in (out / "results.md").read_text()
    end = lines[-len(table) - 2:-1]
    assert end[:-1] == table and end[-1] == "" and lines[-1].startswith("total ")
    # The earlier run is kept whole by --overwrite.
    lock, _ = claim_output_dir(out, resume=False, overwrite=True)
    lock.release()
    (previous,) = out.glob("previous-*")
    assert {p.name for p in previous.iterdir()} == names - {".augcomp.lock"}


# ------------------------------------------------------------------------------------------------ one line, once


def test_parser_mistakes_are_one_line(tmp_path):
    proc = recipe("seg", "--tiny", "--bpp-grid", "0,x", check=False)
    assert proc.returncode == 2  # as argparse's
    error = one_line_error(proc)
    assert error == "error: argument --bpp-grid: expected comma-separated numbers, got '0,x' (see --help)"


@pytest.mark.parametrize("option", ["--codecs", "--train-codecs"])
def test_an_unknown_codec_lists_the_known_ones_once(tmp_path, option):
    with pytest.raises(SystemExit) as info:
        recipe_entry_point(get_task("seg"), "", ["--tiny", option, "jpeg,nope", "--output-dir", str(tmp_path / "x")])
    message = str(info.value.code)
    assert message.startswith(f"error: {option}: unknown codec 'nope'; known codecs: ")
    assert message.count("augcomp-tiny") == 1 and message.count("known codecs") == 1 and "\n" not in message


def test_skipped_codecs_are_shown_with_their_whole_reason(tmp_path):
    from augcomp.experiment import make_parser, parse_args, resolve_codecs
    from augcomp.tasks.base import DataBundle

    task = get_task("seg")
    args = parse_args(make_parser(task, ""), task, ["--tiny", "--output-dir", str(tmp_path)])
    data = DataBundle([0] * 4, [0] * 2, 5, description="four")
    codecs, skipped = resolve_codecs("available")
    skipped["made-up"] = "a reason " + " ".join(f"word{i}" for i in range(60)) + " ending-in-a-hyphenated-word"
    text = plan(task, data, args, codecs, skipped)
    shown = [line for line in text.splitlines() if line.startswith(("  skipped", " " * 16))]
    assert len(shown) > len(skipped) and all(len(line) <= 118 for line in shown)
    # Each reason comes back word for word (continuation lines indented), none cut.
    flat = " ".join(text.split())
    for name, reason in skipped.items():
        assert f"{name}: {' '.join(reason.split())}" in flat
    assert wrapped("x: ", "a-b " * 50, indent=3).count("a-b") == 50


def _launch(*args: str | Path, processes: int = 1) -> subprocess.CompletedProcess:
    if not ACCELERATE.is_file():
        pytest.skip("accelerate's launcher is not installed beside this Python")
    how = ["--cpu", "--num_processes", "1"] if processes == 1 else ["--multi_gpu", "--num_processes", str(processes)]
    cmd = [str(ACCELERATE), "launch", *how, "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend",
           "no", str(ROOT / "recipes" / "seg.py"), "--cpu", *map(str, args)]
    return subprocess.run(cmd, env=_env(OMP_NUM_THREADS="1"), cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("mistake", ["grid", "codec", "used folder"])
def test_errors_under_accelerate_launch_appear_once(tmp_path, processes, mistake):
    out = tmp_path / "used"
    out.mkdir()
    (out / "state.json").write_text("{}")
    argv = {"grid": ["--bpp-grid", "0,x"], "codec": ["--codecs", "nope"], "used folder": []}[mistake]
    proc = _launch("--tiny", "--output-dir", out, *argv, processes=processes)
    assert proc.returncode != 0
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both and "CalledProcessError" not in both and "ChildFailedError" not in both, both
    errors = [line for line in both.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), both
    expected = {"grid": "--bpp-grid", "codec": "unknown codec 'nope'", "used folder": "holds an earlier run"}[mistake]
    assert expected in errors[0] and both.count(expected) == 1
    assert sorted(p.name for p in out.iterdir()) in (["state.json"], [".augcomp.lock", "state.json"])


def test_a_failure_of_one_process_alone_is_reported_by_it(tmp_path):
    # Rank 1 fails where rank 0 does not (a bad file in its shard, say): after waiting to be stopped, it reports
    # the failure itself, so that it is not lost.
    script = tmp_path / "one.py"
    script.write_text(
        "import os, sys, time\n"
        "from augcomp.experiment import recipe, RecipeError\n"
        "recipe.PEER_WAIT_S = 1.0\n"
        "def run(*a, **k):\n"
        "    if os.environ['RANK'] == '1':\n"
        "        raise RecipeError('only rank 1 fails')\n"
        "    time.sleep(60)\n"
        "recipe.run_recipe = run\n"
        "recipe.recipe_entry_point(None, '')\n"
    )
    if not ACCELERATE.is_file():
        pytest.skip("accelerate's launcher is not installed beside this Python")
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    both = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in both, both
    assert both.count("error: only rank 1 fails") == 1, both


def test_the_environment_of_a_plain_run_is_not_taken_for_a_launcher(monkeypatch):
    # A variable accelerate sets, exported in a shell, must not make a plain run stop its parent (the shell).
    from augcomp.experiment import recipe as r

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert r._accelerate_launcher() is None
    assert os.environ.get("RANK") is None or r._rank() == int(os.environ["RANK"])
