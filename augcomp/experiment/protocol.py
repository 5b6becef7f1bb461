"""The robustness protocol: clean model -> sweep -> finetune on compressed images -> sweep -> report.

Every phase records its progress in ``<output_dir>/state.json``; training phases also save the accelerator state and
every random state (:mod:`augcomp.experiment.rng`) after every epoch, so ``--resume`` continues a killed run where it
stopped, skips finished work, and ends with the results an uninterrupted run would have. The output folder is locked
for the run and nothing is written outside it (:mod:`augcomp.experiment.outdir`).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from augcomp.experiment import rng
from augcomp.experiment.errors import RecipeError
from augcomp.experiment.io import (
    RunState,
    atomic_torch_save,
    atomic_write_json,
    ensure_within,
    file_mode,
    replace_dir,
    resolve_dir,
    saving,
)
from augcomp.experiment.loops import WORK_KEYS, evaluate, train_epoch, warmup_cosine
from augcomp.experiment.options import Run, RunOptions, resume_values
from augcomp.experiment.phases import PHASE_TABLE, PHASES, get_phase
from augcomp.experiment.report import build_results, point_key, write_report
from augcomp.experiment.runfiles import CKPT_DIR, STATE_FILE
from augcomp.store import CodecWork
from augcomp.tasks.base import DataBundle, Task, load_checkpoint
from augcomp.tasks.settings import Settings

if TYPE_CHECKING:
    from augcomp.data import CodecMix

__all__ = ["Protocol", "StopRequested"]


class StopRequested(Exception):
    """Raised at the point named by ``--stop-after``; the run can be continued with ``--resume``."""


def _loader(dataset: Any, batch_size: int, train: bool, settings: Settings, options: RunOptions) -> DataLoader:
    from augcomp.data import collate

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) >= batch_size,
        collate_fn=collate,
        num_workers=settings.num_workers,
        pin_memory=torch.cuda.is_available() and not options.cpu,
        persistent_workers=False,
    )


class Protocol:
    """Runs the protocol for one task.

    Args:
        accelerator: an ``accelerate.Accelerator``.
        task: the task.
        data: its datasets.
        run: the run's settings and options (:func:`augcomp.experiment.args.parse_args`).
        codecs: codecs of the sweep.
        train_codecs: codecs finetuning draws from, one per training image (default: ``codecs``).
    """

    def __init__(self, accelerator: Any, task: Task, data: DataBundle, run: Run, codecs: list[str],
                 train_codecs: list[str] | None = None) -> None:
        self.acc = accelerator
        self.task = task
        self.data = data
        self.settings, self.options = run
        self.codecs = codecs
        self.train_codecs = list(train_codecs or codecs)
        self.out = Path(self.options.output_dir)
        self.metric = task.headline(self.settings)
        self._val_cache: dict[str, dict] = {}
        # A store of coded files is the cache (across sweeps and runs); the in-memory one is then not needed.
        self.store = _open_store(self.options.store)
        self._cache_budget = 0 if self.store is not None else self.settings.cache_val_mb * 2**20
        # --train-store is opened now, so that a store without this mix's variants stops the run before any work.
        self.train_source = self._train_source() if self.options.train_store else None
        self.state: RunState

    # ------------------------------------------------------------------------------------------ run

    def run(self) -> dict[str, Any] | None:
        """Runs (or resumes) every phase. Returns the results, or None when stopped by ``--stop-after``."""
        acc, options = self.acc, self.options
        self.state = self._open_state()
        if options.log_with:
            every = {**self.settings.as_dict(), **dataclasses.asdict(options)}
            config = {k: v for k, v in every.items() if isinstance(v, (int, float, str, bool))}
            acc.init_trackers(f"augcomp-{self.task.name}", config=config)
        try:
            self._announce("clean")
            model = self._clean()
            self._announce("sweep_before")
            self._sweep("sweep_before", model)
            self._announce("finetune")
            model = self._finetune(model)
            self._announce("sweep_after")
            self._sweep("sweep_after", model)
            results = self._report()
        except StopRequested as stop:
            acc.print(f"stopped after {stop} (--stop-after); continue with --resume --output-dir {self.out}")
            return None
        finally:
            if options.log_with:
                acc.end_training()
        return results

    def _announce(self, phase: str) -> None:
        # A line as each phase starts, so a log shows where the run is before the phase's first result.
        what = get_phase(phase).announce.format(epochs=self.settings.epochs, train_images=len(self.data.train),
                                                val_images=len(self.data.val), points=len(self._points()))
        self.acc.print(f"[{PHASES.index(phase) + 1}/{len(PHASES)}] {what}")

    def _config(self) -> dict[str, Any]:
        # What must not change between a run and its --resume (marked so in the fields' metadata): it changes what
        # the saved state means. The finetuning mix (codecs, bitrates, clean share) is compared too.
        return {**resume_values(Run(self.settings, self.options)), "finetune_mix": self._mix()}

    def _mix(self) -> dict[str, Any]:
        # What finetuning draws from, as state.json stores it (lists, not tuples), so a resume compares equal.
        bpp = self.settings.train_bpp
        return {"codecs": self.train_codecs, "bpp": list(bpp) if isinstance(bpp, tuple) else bpp,
                "clean_share": self.settings.clean_share,
                # Stored variants (--train-store) are other images than variants coded in the run.
                **({"stored_variants": self.train_source.variants} if self.train_source is not None else {})}

    def _open_state(self) -> RunState:
        acc, path = self.acc, self.out / STATE_FILE
        main = acc.is_main_process
        resumed = bool(self.options.resume and path.is_file())
        if resumed:
            state = RunState.load(path, write=main, root=self.out)
            old = state.data.get("config", {})
            # A key that an older augcomp did not save cannot be compared; the rest must match.
            diff = {k: (old.get(k), v) for k, v in self._config().items() if k in old and old[k] != v}
            if diff:
                raise RecipeError(
                    f"{path} was written with different settings {diff} (saved, given); resume with the same "
                    "settings, or start a new run in another --output-dir"
                )
            acc.print(f"resuming the run in {self.out}")
        else:
            # An earlier run's files were refused or moved aside by claim_output_dir before this point.
            if self.options.resume:
                acc.print(f"--resume: no state in {self.out}; starting a new run")
            state = RunState.fresh(path, self._config(), write=main, root=self.out)
        acc.wait_for_everyone()
        state.begin_invocation(resumed)
        return state

    # ------------------------------------------------------------------------------------------ models

    def _build(self, pretrained: bool) -> nn.Module:
        if pretrained:
            # One process downloads; the others then read the cache.
            with self.acc.main_process_first():
                return self.task.build_model(self.settings, self.data, pretrained=True)
        return self.task.build_model(self.settings, self.data, pretrained=False)

    def _load(self, path: Path) -> nn.Module:
        model = self._build(pretrained=False)
        try:
            load_checkpoint(model, path)
        except FileNotFoundError as e:
            raise RecipeError(f"{e}; check --checkpoint") from None
        return model

    def _save_model(self, model: nn.Module, path: Path) -> None:
        if self.acc.is_main_process:
            atomic_torch_save(self.acc.unwrap_model(model).state_dict(), path, root=self.out)
        self.acc.wait_for_everyone()

    def _clean(self) -> nn.Module:
        settings, options, state = self.settings, self.options, self.state
        path = self.out / get_phase("clean").model_file
        if state.done("clean"):
            self.acc.print(f"clean model: done ({state.phase('clean').get('source')}), loading {path}")
            return self._load(path)
        start = time.time()
        if options.checkpoint:
            model = self._load(Path(options.checkpoint))
            source = f"checkpoint {options.checkpoint}"
        elif settings.clean_epochs > 0:
            model = self._train("clean", self._build(pretrained=options.pretrained), settings.clean_epochs,
                                settings.clean_lr)
            source = f"trained {settings.clean_epochs} epochs" + (
                " from a pretrained backbone" if options.pretrained else "")
        elif self.task.has_pretrained(settings, self.data):
            model = self._build(pretrained=True)
            source = f"pretrained {settings.model}"
        else:
            raise RecipeError(
                f"no clean model: {settings.model!r} has no pretrained weights that fit this {self.task.title} data "
                f"({self.data.num_classes} classes). Give --checkpoint PATH, or train one with --clean-epochs N "
                "(add --pretrained to start from a pretrained backbone)."
            )
        self._save_model(model, path)
        seconds = state.phase("clean").get("seconds", 0.0) + time.time() - start
        state.set("clean", status="done", source=source, seconds=seconds)
        state.note("clean")
        self._maybe_stop("clean")
        return model

    def _finetune(self, model: nn.Module) -> nn.Module:
        settings, state, path = self.settings, self.state, self.out / get_phase("finetune").model_file
        if state.done("finetune"):
            self.acc.print(f"finetuning: done, loading {path}")
            return self._load(path)
        from augcomp.data import CodecMix

        start = time.time()
        # One model for every codec and rate of the sweep: per image a codec from the mix and a bitrate from the
        # range, and a share of images kept clean. Each image's draws are keyed by (seed, epoch, index), so a
        # resumed run, any number of workers and any number of processes draw the same.
        mix = CodecMix(self.train_codecs, settings.train_bpp, settings.clean_share)
        model = self._train("finetune", model, settings.epochs, settings.lr, mix=mix)
        self._save_model(model, path)
        seconds = state.phase("finetune").get("seconds", 0.0) + time.time() - start
        state.set("finetune", status="done", seconds=seconds)
        state.note("finetune")
        self._maybe_stop("finetune")
        return model

    # ------------------------------------------------------------------------------------------ training

    def _train(self, phase: str, model: nn.Module, epochs: int, lr: float, mix: CodecMix | None = None) -> nn.Module:
        from augcomp.data import TrainingSamples

        acc, settings = self.acc, self.settings
        # Keyed draws (geometry, and the mix's codec, target and clean choice); library codecs are compressed in the
        # DataLoader workers, the rest on the device batch in train_epoch.
        source = self.train_source if mix is not None else None
        samples = TrainingSamples(self.data.train, settings.seed, phase, mix, source=source,
                                  variants=source.variants if source is not None else 0)
        loader = _loader(samples, settings.batch_size, True, settings, self.options)
        # The scheduler is stepped once per process per optimizer step (accelerate's convention), so the schedule
        # is laid out over the unsharded number of steps.
        total = epochs * math.ceil(len(loader) / settings.grad_accum)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, settings.warmup))
        # Each phase prepares its own objects; forgetting the previous phase's keeps save_state/load_state to this
        # phase's model, optimizer and scheduler.
        acc.free_memory()
        model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
        # Generators owned by objects, which accelerate's save_state does not keep (the global ones it does).
        generators = rng.loader_generators(loader)
        start_epoch = 0
        draws: dict[str, int] = {}  # images per codec (and clean) over the epochs so far
        work: dict[str, float] = {}  # images compressed per place, and seconds waited for data, so far
        ckpt = resolve_dir(self.out / CKPT_DIR / phase)
        if ckpt is not None and self.state.phase(phase).get("epochs_done", 0) > 0:
            acc.load_state(str(ckpt))
            progress = _read_json(ckpt / "progress.json")
            start_epoch = int(progress["epochs_done"])
            # Kept with the checkpoint rather than in state.json, so the counts always match the epochs restored.
            draws = dict(progress.get("draws", {}))
            work = dict(progress.get("work", {}))
            self._restore_random(ckpt, generators)
            acc.print(f"{phase}: resuming after epoch {start_epoch} from {ckpt}")
        self.state.set(phase, status="running")
        for epoch in range(start_epoch, epochs):
            t0 = time.time()
            # The prepared loader passes its own epoch counter to the dataset when iterated, and that counter starts
            # at 0 in a resumed run: it is set too, so that the samples see the true epoch.
            samples.set_epoch(epoch)
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            stats = train_epoch(acc, self.task, model, optimizer, scheduler, loader, mix=mix,
                                clip_grad_norm=settings.clip_grad_norm, desc=f"{phase} {epoch + 1}/{epochs}")
            for name, n in stats["draws"].items():
                draws[name] = draws.get(name, 0) + n
            for name, n in stats["work"].items():
                work[name] = work.get(name, 0) + n
            # Taken before anything else can draw, so a resumed run starts its next epoch from exactly here.
            self._save_state(phase, epoch + 1, rng.capture(generators), draws, work)
            seconds = time.time() - t0
            note = f", train bpp {stats['bpp']:.3f}" if math.isfinite(stats["bpp"]) else ""
            if stats["draws"]:
                note += ", images " + ", ".join(f"{k} {n}" for k, n in stats["draws"].items())
            acc.print(f"{phase} epoch {epoch + 1}/{epochs}: loss {stats['loss']:.4f}{note} ({seconds:.0f} s)")
            total = max(1, sum(stats["draws"].values()))
            acc.log({f"{phase}/loss": stats["loss"], f"{phase}/lr": scheduler.get_last_lr()[0],
                     **({f"{phase}/train_bpp": stats["bpp"]} if math.isfinite(stats["bpp"]) else {}),
                     **{f"{phase}/share/{k}": n / total for k, n in stats["draws"].items()}},
                    step=epoch + 1)
            self.state.set(phase, epochs_done=epoch + 1, **({"draws": dict(draws)} if draws else {}),
                           **({"codec_work": dict(work)} if work else {}))
            self.state.note(f"{phase}:{epoch + 1}")
            if self.options.stop_after == f"{phase}:{epoch + 1}":
                raise StopRequested(f"{phase} epoch {epoch + 1}")
        model = acc.unwrap_model(model, keep_fp32_wrapper=False)
        acc.free_memory()
        return model

    def _train_source(self) -> Any:
        # --train-store: the stored variants of the finetuning mix, decoded where samples are loaded (nothing encoded).
        from augcomp.data import CodecMix
        from augcomp.data.train_store import open_variants
        from augcomp.experiment.precompute import train_store_hint
        from augcomp.store import StoreError

        mix = CodecMix(self.train_codecs, self.settings.train_bpp, self.settings.clean_share)
        where = self.options.train_store
        try:
            return open_variants(where, mix, self.settings.seed, train_store_hint(self.settings, self.options, mix))
        except (StoreError, OSError) as e:
            raise RecipeError(f"--train-store {where}: {e}") from None

    def _restore_random(self, ckpt: Path, generators: dict[str, torch.Generator]) -> None:
        path = Path(rng.state_file(ckpt, self.acc.process_index))
        if not path.is_file():
            self.acc.print(f"warning: {path} is missing (a checkpoint of an older augcomp); the resumed run draws "
                           "different random numbers than an uninterrupted one would")
            return
        missing = rng.restore(rng.load(path), generators)
        if missing:
            self.acc.print(f"warning: {path} holds no state for {', '.join(missing)}")

    def _save_state(self, phase: str, epochs_done: int, random_state: dict[str, Any],
                    draws: dict[str, int] | None = None, work: dict[str, float] | None = None) -> None:
        acc = self.acc
        final = self.out / CKPT_DIR / phase
        tmp = ensure_within(self.out, final.with_name(final.name + ".tmp"))
        ensure_within(self.out, final)
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        with saving(tmp):
            acc.save_state(str(tmp))
        rng.save(random_state, rng.state_file(tmp, acc.process_index))
        acc.wait_for_everyone()
        if acc.is_main_process:
            # safetensors writes private (0600) files; the checkpoint should follow the umask like the rest.
            mode = file_mode()
            for path in tmp.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    path.chmod(mode)
            progress = {"phase": phase, "epochs_done": epochs_done, **({"draws": draws} if draws else {}),
                        **({"work": work} if work else {})}
            atomic_write_json(tmp / "progress.json", progress, root=self.out)
            replace_dir(tmp, final, root=self.out)
        acc.wait_for_everyone()

    # ------------------------------------------------------------------------------------------ sweep

    def _points(self) -> list[tuple[str | None, float | None]]:
        return [(None, None)] + [(c, b) for c in self.codecs for b in self.settings.bpp_grid]

    def _cache_for(self, key: str) -> dict | None:
        if key == "clean" or self._cache_budget <= 0:
            return None
        if key in self._val_cache:
            return self._val_cache[key]
        per_point = 3 * self.settings.image_size**2 * len(self.data.val) / self.acc.num_processes
        if per_point * (len(self._val_cache) + 1) > self._cache_budget:
            return None
        self._val_cache[key] = {}
        return self._val_cache[key]

    def _sweep(self, phase: str, model: nn.Module) -> None:
        acc, settings, state = self.acc, self.settings, self.state
        if state.done(phase):
            acc.print(f"{phase}: done")
            return
        start = time.time()
        acc.free_memory()
        model = acc.prepare_model(model, evaluation_mode=True)
        loader = acc.prepare_data_loader(_loader(self.data.val, settings.eval_batch_size, False, settings,
                                                       self.options))
        points = state.phase(phase).setdefault("points", {})
        state.set(phase, status="running")
        label = "before" if phase == "sweep_before" else "after"
        for codec, bpp in self._points():
            key = point_key(codec, bpp)
            if key in points:
                continue
            t0 = time.time()
            work = CodecWork()
            metrics, achieved = evaluate(acc, self.task, model, loader, settings, self.data, codec=codec, bpp=bpp,
                                         cache=self._cache_for(key), store=self.store, work=work,
                                         desc=f"{phase} {key}")
            points[key] = {"metrics": metrics, "achieved_bpp": achieved, "seconds": time.time() - t0,
                           **({"codec_work": self._gathered(work)} if codec is not None else {})}
            state.set(phase, points=points)
            state.note(f"{phase}:{key}")
            ach = "" if achieved is None else f" (achieved {achieved:.3f} bpp)"
            acc.print(f"{label} finetuning, {key}{ach}: {self.metric} {metrics[self.metric]:.2f}")
            acc.log({f"{phase}/{key}/{k}": v for k, v in metrics.items()})
        seconds = state.phase(phase).get("seconds", 0.0) + time.time() - start
        state.set(phase, status="done", seconds=seconds)
        state.note(phase)
        acc.free_memory()
        self._maybe_stop(phase)

    # ------------------------------------------------------------------------------------------ report

    def _codec_work(self) -> dict[str, Any]:
        """Where the run's coding went: the two sweeps' images encoded here and reused (from the store, or the
        in-memory cache) with the seconds spent encoding and decoding, summed over processes; and the finetuning's
        images compressed in the training process, in the loader workers and on the device batch, with the seconds
        training waited for data."""
        sweep = {"encoded": 0, "reused": 0, "encode_seconds": 0.0, "decode_seconds": 0.0}
        for phase in (p.name for p in PHASE_TABLE if p.kind == "sweep"):
            for point in self.state.phase(phase).get("points", {}).values():
                for k, v in point.get("codec_work", {}).items():
                    sweep[k] = sweep.get(k, 0) + v
        train = dict.fromkeys(WORK_KEYS, 0) | {"train_data_wait_seconds": 0.0}
        train |= self.state.phase("finetune").get("codec_work", {})
        train["train_data_wait_seconds"] = round(float(train["train_data_wait_seconds"]), 3)
        return {"store": self.options.store, "train_store": self.options.train_store,
                **{f"sweep_{k}": (round(v, 3) if isinstance(v, float) else v) for k, v in sweep.items()}, **train}

    def _report(self) -> dict[str, Any]:
        settings, state = self.settings, self.state
        bpp = settings.train_bpp
        results = build_results(
            task=self.task.name,
            title=self.task.title,
            metric=self.metric,
            sweep_before=state.phase("sweep_before")["points"],
            sweep_after=state.phase("sweep_after")["points"],
            codecs=self.codecs,
            grid=list(settings.bpp_grid),
            min_drop=settings.min_drop,
            extra={
                "model": settings.model,
                "model_kwargs": settings.model_kwargs,
                "data": self.data.description,
                "train_size": len(self.data.train),
                "val_size": len(self.data.val),
                "clean_model": state.phase("clean").get("source"),
                "clean_epochs": settings.clean_epochs,
                "finetune_epochs": settings.epochs,
                "train_bpp": list(bpp) if isinstance(bpp, tuple) else bpp,
                "codecs": self.codecs,
                "train_codecs": self.train_codecs,
                "clean_share": settings.clean_share,
                # Images the finetuning mix drew over all epochs: left clean, and per codec.
                "finetune_draws": state.phase("finetune").get("draws", {}),
                # Files left out by --skip-bad-files: {"split", "path", "fault"} each.
                "bad_files": self.data.bad_files,
                "num_processes": self.acc.num_processes,
                "codec_work": self._codec_work(),
                "mixed_precision": str(self.acc.mixed_precision),
                "seconds": {p.name: round(state.phase(p.name).get("seconds", 0.0), 1)
                            for p in PHASE_TABLE if p.kind != "report"},
            },
        )
        if self.acc.is_main_process:
            paths = write_report(results, self.out)
            self.acc.print(f"report: {', '.join(str(p) for p in paths.values())}")
        self.acc.wait_for_everyone()
        state.set("report", status="done")
        state.note("report")
        return results

    def _gathered(self, work: CodecWork) -> dict[str, float]:
        # Summed over the processes, which each code their own shard of the validation set.
        values = torch.tensor([work.encoded, work.reused, work.encode_seconds, work.decode_seconds],
                              dtype=torch.float64, device=self.acc.device)
        total = self.acc.reduce(values, reduction="sum").tolist()
        return {"encoded": int(round(total[0])), "reused": int(round(total[1])),
                "encode_seconds": round(total[2], 3), "decode_seconds": round(total[3], 3)}

    def _maybe_stop(self, phase: str) -> None:
        if self.options.stop_after == phase:
            raise StopRequested(phase)


def _open_store(url: str | None) -> Any:
    if not url:
        return None
    from augcomp.store import Store, StoreError

    try:
        return Store(url)
    except (StoreError, OSError, ValueError) as e:
        raise RecipeError(f"--store {url}: {e}") from None


def _read_json(path: Path) -> dict[str, Any]:
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)
