"""The store of coded files: keys, reuse, fsspec, concurrent writers, a killed precompute, a flipped byte, Ray."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from augcomp import compress, decompress
from augcomp.samples import ade20k_folder, natural_crops
from augcomp.store import CodecWork, Store, StoreError, coded_images, encode_entries, image_hash

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
       "AUGCOMP_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "augcomp.cli", *args], env=ENV, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ade(tmp_path_factory) -> Path:
    # Six distinct 96-pixel photographs in the validation split (and one in training).
    return ade20k_folder(tmp_path_factory.mktemp("ade"), train=1, val=6, size=96, seed=1)


def _precompute(ade: Path, store: Path | str, *extra: str, codecs: str = "jpeg,webp",
                timeout: float = 300) -> subprocess.CompletedProcess:
    return _cli("precompute", "--task", "seg", "--data-root", str(ade), "--split", "validation", "--codecs", codecs,
                "--bpp-grid", "0.3,1", "--image-size", "64", "--store", str(store), "--json", *extra, timeout=timeout)


def test_lookup_reuses_entries_with_the_same_pixels_and_bits():
    x = list(natural_crops(4, 48, seed=7))
    store = Store("memory://augcomp-test/lookup")
    work = CodecWork()
    first, bpp1 = coded_images(store, x, "webp", 0.5, work=work)
    assert (work.encoded, work.reused) == (4, 0)
    second, bpp2 = coded_images(store, x, "webp", 0.5, work=work)
    assert (work.encoded, work.reused) == (4, 4)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True)) and torch.equal(bpp1, bpp2)
    # The same as compress() itself, and each entry's bytes decode to it.
    ref = compress(torch.stack(x), "webp", bpp=0.5)
    assert torch.equal(torch.stack(first), ref.image) and torch.allclose(bpp1, ref.bpp)
    # Another target, codec or option is another entry.
    coded_images(store, x[:1], "webp", 0.6, work=work)
    coded_images(store, x[:1], "webp", 0.5, options={"method": 6}, work=work)
    assert work.encoded == 6 and len(store) == 6
    # The thread count does not change what is coded, so it does not change the key.
    coded_images(store, x[:1], "webp", 0.5, options={"threads": 1}, work=work)
    assert work.reused == 5


def test_entries_carry_what_they_are_and_a_checksum():
    x = natural_crops(2, 32, seed=8)
    entries, decoded = encode_entries(list(x), "avif", "bpp", [0.4, 1.2], sources=["a", "b"])
    for entry, image, source in zip(entries, decoded, ("a", "b"), strict=True):
        assert entry.image == image_hash(x[entries.index(entry)])
        assert entry.codec == "avif" and entry.target_kind == "bpp" and entry.source == source
        assert entry.checksum == entry.expected_checksum()
        assert torch.equal(decompress(entry.data, "avif"), image)
        assert entry.bpp == entry.bits / (32 * 32)
    with pytest.raises(TypeError, match="uint8"):
        encode_entries([x[0].float() / 255], "avif", "bpp", [0.4])
    with pytest.raises(ValueError, match="target_kind"):
        encode_entries([x[0]], "avif", "psnr", [30.0])


def test_a_folder_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not an augcomp store"):
        Store(str(tmp_path))


def _writer(url: str, seed: int, barrier) -> None:
    store = Store(url)
    x = list(natural_crops(6, 32, seed=seed))
    entries, _ = encode_entries(x, "jpeg", "bpp", [0.5] * 6)
    barrier.wait()
    for i in range(0, 6, 2):  # three part files each, interleaved with the other writer's
        store.write(entries[i:i + 2])


def test_two_writers_at_once_leave_every_entry_whole(tmp_path):
    url = str(tmp_path / "shared")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(url, seed, barrier)) for seed in (11, 12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = Store(url)
    report = store.verify()
    assert report.bad == [] and report.entries == 12 and report.rows == 12
    assert len(store.parts()) == 6
    # Nothing but whole part files and the marker: no temporary file is left where readers look.
    names = sorted(p.name for p in (tmp_path / "shared" / "parts").iterdir())
    assert all(n.startswith("part-") and n.endswith(".parquet") for n in names)
    assert report.digest == store.digest()


def test_the_memory_file_system_is_a_real_store():
    url = "memory://augcomp-test/mem"
    x = list(natural_crops(3, 40, seed=9))
    coded_images(Store(url), x, "jpeg", 0.8)
    again = Store(url)  # another handle sees what the first wrote
    info = again.info()
    assert info["entries"] == 3 and info["groups"][0]["codec"] == "jpeg" and info["groups"][0]["entries"] == 3
    assert again.verify().digest == info["digest"]


def test_precompute_verify_flip_repair(ade, tmp_path):
    store = tmp_path / "store"
    first = _precompute(ade, store, "--workers", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    summary = _last_json(first.stdout)
    assert (summary["encoded"], summary["reused"], summary["entries"]) == (24, 0, 24)
    again = _last_json(_precompute(ade, store).stdout)
    assert (again["encoded"], again["reused"], again["digest"]) == (0, 24, summary["digest"])
    ok = _cli("store", "verify", str(store), "--json")
    assert ok.returncode == 0 and _last_json(ok.stdout)["bad"] == 0
    assert _last_json(ok.stdout)["digest"] == summary["digest"]
    # One byte flipped inside one stored payload: verify names exactly that entry and fails.
    handle = Store(str(store))
    key = sorted(handle.keys())[3]
    entry = handle.read([key])[key]
    part = Path(handle.locations(key)[0])
    raw = bytearray(part.read_bytes())
    assert raw.count(entry.data) == 1  # the file holds each coded file once (no copy in column statistics)
    at = raw.find(entry.data) + len(entry.data) // 2
    raw[at] ^= 0x10
    part.write_bytes(bytes(raw))
    bad = _cli("store", "verify", str(store), "--json")
    report = _last_json(bad.stdout)
    assert bad.returncode == 1 and report["bad"] == 1 and report["bad_entries"][0]["key"] == key
    assert "checksum" in report["bad_entries"][0]["reason"]
    # A recipe never reads the bad copy: the lookup checks each entry's checksum.
    assert key not in Store(str(store)).read([key])
    # The next precompute encodes exactly that entry; verify then passes with the original digest.
    fixed = _last_json(_precompute(ade, store).stdout)
    assert (fixed["encoded"], fixed["reused"], fixed["repaired"]) == (1, 23, 1)
    final = _cli("store", "verify", str(store), "--json")
    assert final.returncode == 0 and _last_json(final.stdout)["digest"] == summary["digest"]
    info = _cli("store", "info", str(store), "--json")
    assert _last_json(info.stdout)["entries"] == 24 and "webp" in info.stdout


def test_a_killed_precompute_resumes_without_re_encoding(ade, tmp_path):
    store = tmp_path / "killed"
    cmd = [sys.executable, "-m", "augcomp.cli", "precompute", "--task", "seg", "--data-root", str(ade), "--split",
           "validation", "--codecs", "avif,jpeg2000", "--bpp-grid", "0.3,1", "--image-size", "64", "--store",
           str(store), "--flush-every", "2", "--json"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    parts = store / "parts"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and len([p for p in parts.iterdir() if p.name.startswith("part-")]) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(Store(str(store)))
    assert 0 < kept < 24, kept
    resumed = _precompute(ade, store, codecs="avif,jpeg2000")
    summary = _last_json(resumed.stdout)
    assert (summary["encoded"], summary["reused"]) == (24 - kept, kept)
    clean = _last_json(_precompute(ade, tmp_path / "clean", codecs="avif,jpeg2000").stdout)
    assert summary["digest"] == clean["digest"] and Store(str(store)).verify().bad == []


def test_ray_and_local_engines_fill_the_same_store(ade, tmp_path):
    pytest.importorskip("ray")
    local = _last_json(_precompute(ade, tmp_path / "local", "--workers", "2").stdout)
    ray_run = _precompute(ade, tmp_path / "ray", "--engine", "ray", "--workers", "2", timeout=600)
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    remote = _last_json(ray_run.stdout)
    assert remote["entries"] == local["entries"] == 24 and remote["encoded"] == 24
    assert remote["digest"] == local["digest"]
    # One worker in the calling process writes the same entries as two forked ones.
    single = _last_json(_precompute(ade, tmp_path / "single", "--workers", "1").stdout)
    assert single["digest"] == local["digest"] and single["encoded"] == 24


def test_recipe_sweeps_read_and_fill_the_store(ade, tmp_path):
    from tests.test_recipes import run_recipe

    store = tmp_path / "sweeps"
    common = ("--data-root", str(ade), "--model", "resnet10t", "--image-size", "64", "--batch-size", "2",
              "--eval-batch-size", "3", "--head-channels", "16", "--codecs", "jpeg,webp", "--bpp-grid", "0.3,1",
              "--store", str(store))
    run_recipe("seg", *common, "--clean-epochs", "1", "--epochs", "0", "--output-dir", str(tmp_path / "a"))
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    assert first["codec_work"]["sweep_encoded"] == 24 and first["codec_work"]["sweep_reused"] == 24
    run_recipe("seg", *common, "--checkpoint", str(tmp_path / "a" / "clean_model.pt"), "--epochs", "0",
               "--output-dir", str(tmp_path / "b"))
    second = json.loads((tmp_path / "b" / "results.json").read_text())
    assert second["codec_work"]["sweep_encoded"] == 0 and second["codec_work"]["sweep_reused"] == 48
    assert second["clean"] == first["clean"]
    assert [r["before"] for r in second["rows"]] == [r["before"] for r in first["rows"]]
    assert [r["achieved_bpp"] for r in second["rows"]] == [r["achieved_bpp"] for r in first["rows"]]
    # The same metrics as a run that encoded without any store.
    run_recipe("seg", *common[:-2], "--checkpoint", str(tmp_path / "a" / "clean_model.pt"), "--epochs", "0",
               "--output-dir", str(tmp_path / "c"))
    plain = json.loads((tmp_path / "c" / "results.json").read_text())
    assert [r["before"] for r in plain["rows"]] == [r["before"] for r in first["rows"]]
    assert plain["codec_work"]["store"] is None and plain["codec_work"]["sweep_encoded"] == 24
