"""The typed run: what parsing gives (settings and options), which of them must match on ``--resume`` (read from the
fields' metadata), and the one table of phases that the state, ``--stop-after``, the announcements and the output
folder's checkpoint names follow."""

from __future__ import annotations

import dataclasses
import json

import pytest

from augcomp.experiment import Protocol, RecipeError, make_parser, parse_args
from augcomp.experiment.options import Run, RunOptions, resume_keys, resume_values
from augcomp.tasks import get_task

# What a resumed run has had to match since resume was introduced: the settings that change what the saved state
# means. The metadata must keep exactly these.
EXPECTED_RESUME_KEYS = {"task", "model", "model_kwargs", "data_root", "image_size", "train_size", "val_size", "seed",
                        "clean_epochs", "epochs", "checkpoint"}


class _Acc:
    """What Protocol._open_state asks of the accelerator, for one process."""

    is_main_process = True

    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, *args: object) -> None:
        self.lines.append(" ".join(map(str, args)))

    def wait_for_everyone(self) -> None:
        pass


def _open(run: Run) -> Protocol:
    protocol = Protocol(_Acc(), get_task(run.options.task), None, run, ["jpeg"])
    protocol.state = protocol._open_state()
    return protocol


def _marked(obj: object) -> set[str]:
    return {f.name for f in dataclasses.fields(obj) if f.metadata.get("resume", False)}


@pytest.mark.parametrize("name", ["cls", "det", "seg"])
def test_resume_keys_are_the_fields_marked_resume(name, tmp_path):
    task = get_task(name)
    settings, options = parse_args(make_parser(task, ""), task, ["--tiny", "--output-dir", str(tmp_path)])
    assert isinstance(options, RunOptions) and options.output_dir == str(tmp_path) and options.task == name
    marked = _marked(settings) | _marked(options)
    assert set(resume_keys(type(settings))) == marked == EXPECTED_RESUME_KEYS
    assert set(resume_values(Run(settings, options))) == marked
    # What state.json records: those keys, and the finetuning mix.
    config = _open(Run(settings, options)).state.data["config"]
    assert set(config) == marked | {"finetune_mix"}
    assert config["task"] == name and config["seed"] == settings.seed and config["data_root"] is None


def _other(value: object) -> object:
    # A different value of the same kind, whatever the field.
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if value is None:
        return "given"
    raise AssertionError(f"no other value for {value!r}")


def test_a_changed_resume_setting_is_refused_and_another_is_not(tmp_path):
    task = get_task("cls")
    settings, options = parse_args(make_parser(task, ""), task, ["--tiny", "--output-dir", str(tmp_path)])
    _open(Run(settings, options))
    resumed = dataclasses.replace(options, resume=True)
    assert _open(Run(settings, resumed)).acc.lines == [f"resuming the run in {tmp_path}"]
    for name in sorted(_marked(settings)):
        changed = dataclasses.replace(settings, **{name: _other(getattr(settings, name))})
        with pytest.raises(RecipeError, match=rf"different settings \{{'{name}': "):
            _open(Run(changed, resumed))
    for name in sorted(_marked(options) - {"task"}):
        changed = dataclasses.replace(resumed, **{name: _other(getattr(resumed, name))})
        with pytest.raises(RecipeError, match=rf"different settings \{{'{name}': "):
            _open(Run(settings, changed))
    # Settings outside the resume set (and outside the finetuning mix, which is checked on its own) may change.
    free = {"lr": 0.5, "batch_size": 7, "bpp_grid": (0.3,), "warmup": 0.2, "eval_batch_size": 5, "min_drop": 2.0,
            "codecs": "jpeg", "num_workers": 1, "cache_val_mb": 0.0}
    assert not set(free) & _marked(settings)
    for name, value in free.items():
        assert getattr(settings, name) != value, name
        _open(Run(dataclasses.replace(settings, **{name: value}), resumed))
    _open(Run(settings, dataclasses.replace(resumed, stop_after="clean", cpu=True, store=str(tmp_path / "s"))))


def test_resume_from_the_command_line_compares_the_marked_settings(tmp_path):
    task = get_task("seg")

    def open_state(*argv: str) -> dict:
        run = parse_args(make_parser(task, ""), task, ["--tiny", "--output-dir", str(tmp_path), *argv])
        return _open(run).state.data["config"]

    config = open_state("--epochs", "2")
    assert json.loads((tmp_path / "state.json").read_text())["config"] == config
    assert open_state("--epochs", "2", "--resume", "--lr", "0.01", "--bpp-grid", "0.5") == config
    with pytest.raises(RecipeError, match=r"different settings \{'epochs': \(2, 3\)\}"):
        open_state("--epochs", "3", "--resume")


def test_a_task_s_own_options_are_kept_apart(tmp_path):
    from augcomp.tasks import ClassificationTask

    class WithOption(ClassificationTask):
        def add_arguments(self, parser):
            parser.add_argument("--teacher", default=None)

    task = WithOption()
    settings, options = parse_args(make_parser(task, ""), task, ["--tiny", "--teacher", "t.pt", "--cpu"])
    assert options.extra == {"teacher": "t.pt"} and options.cpu and not options.dry_run
    assert settings == task.settings(True, tiny=True)


# ------------------------------------------------------------------------------------------------ the phase table


def test_every_phase_consumer_follows_the_table(tmp_path):
    from augcomp.experiment.io import RunState
    from augcomp.experiment.outdir import run_paths
    from augcomp.experiment.phases import PHASE_TABLE, PHASES
    from augcomp.experiment.runfiles import run_file_names
    from augcomp.tasks.base import DataBundle

    assert PHASES == ("clean", "sweep_before", "finetune", "sweep_after", "report")
    # The state has one entry per phase, in order.
    assert tuple(RunState.fresh(tmp_path / "state.json", {}).data["phases"]) == PHASES
    # --stop-after takes every phase, and an epoch of a training phase only; its help and error list them.
    task = get_task("cls")
    parser = make_parser(task, "")
    trains = [p.name for p in PHASE_TABLE if p.trains]
    assert trains == ["clean", "finetune"]
    for text in (*PHASES, *(f"{name}:2" for name in trains)):
        assert parse_args(parser, task, ["--stop-after", text]).options.stop_after == text
    help_text = next(a.help for a in parser._actions if a.dest == "stop_after")
    assert all(name in help_text for name in PHASES) and "'finetune:N'" in help_text
    for bad in ("sweep_before:1", "report:1", "finetune:x", "nonsense"):
        with pytest.raises(SystemExit) as refused:
            parse_args(parser, task, ["--stop-after", bad])
        assert "clean, sweep_before, finetune, sweep_after, report" in str(refused.value.code), bad
    # Checkpoint folders exist for the training phases only, and the model files are run files.
    ckpts = {p.name for p in run_paths(tmp_path) if p.parent.name == "ckpt"}
    assert ckpts == {f"{name}{suffix}" for name in trains for suffix in ("", ".tmp", ".old")}
    assert {p.model_file for p in PHASE_TABLE if p.trains} <= set(run_file_names())
    assert all(p.model_file is None for p in PHASE_TABLE if not p.trains)
    # Each phase but the report is announced, numbered out of the table's length.
    settings, options = parse_args(parser, task, ["--tiny", "--bpp-grid", "0.5,1", "--output-dir", str(tmp_path)])
    protocol = Protocol(_Acc(), task, DataBundle([0] * 6, [0] * 4, 2), Run(settings, options), ["jpeg", "webp"])
    for phase in PHASES[:-1]:
        protocol._announce(phase)
    assert protocol.acc.lines == [
        "[1/5] clean model",
        "[2/5] sweep before finetuning: 5 points x 4 images",
        f"[3/5] finetuning: {settings.epochs} epochs x 6 images",
        "[4/5] sweep after finetuning: 5 points x 4 images",
    ]
