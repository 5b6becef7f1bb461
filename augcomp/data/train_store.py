"""Finetuning from a store of coded files: K coded variants per training image, made ahead of time, decoded where the
samples are loaded.

For codecs too slow to run in the training loop, ``augcomp precompute --split <train split> --variants K`` codes each
training image K times. Variant ``k`` of image ``index`` is coded with the ``(codec, target)`` that
:func:`variant_draw` gives: a draw of the finetuning :class:`~augcomp.data.CodecMix` (never clean) from a generator
keyed by ``(seed, "variant", k, index)``, so a recipe finds it again without asking the store what it holds. What is
coded is the image as the dataset loads it, before its geometry (``dataset.load(index)``: decoding and any
deterministic resize), so that finetuning decodes the variant and then draws the sample's crop and flip on it as it
would on the clean image.

During finetuning (``--train-store``) each sample and epoch is left clean with the mix's ``clean_share``, or takes
one of the K variants uniformly (:func:`variant_choice`, keyed by the sample's ``(seed, phase, epoch, index)``), and
:class:`StoredVariants` decodes it from the store. Store entries keep the store's own key (image content, codec
identity, target), so sweep entries and training entries share a store without colliding.

A store remembers each set of variants it holds (:func:`record_variants`, one small JSON file under ``variants/``),
so that a recipe knows K and can say what to run when the set it needs is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from augcomp._errors import AugcompError
from augcomp._random import keyed_generator
from augcomp.data.training import CodecMix, SampleKey

__all__ = ["MissingVariantError", "StoredVariants", "augment_sample", "find_variants", "load_sample",
           "open_variants", "precompute_command", "record_variants", "variant_choice", "variant_draw", "variant_sets"]

VARIANTS_DIR = "variants"


class MissingVariantError(AugcompError, LookupError):
    """A stored variant that finetuning needs is not in the ``--train-store`` (the message says how to fill it)."""


# ------------------------------------------------------------------------------------------ draws


def variant_draw(mix: CodecMix, seed: int, k: int, index: int) -> tuple[int, float]:
    """``(codec, target)`` of variant ``k`` of training image ``index``: the mix's draw, never clean, keyed by
    ``(seed, "variant", k, index)``."""
    codec, target = CodecMix(mix.names, mix.bpp, 0.0).draw(keyed_generator(seed, "variant", int(k), int(index)))
    return codec, target


def variant_choice(key: SampleKey, variants: int, clean_share: float) -> int:
    """Which variant a sample takes in an epoch: ``-1`` (clean) with probability ``clean_share``, else one of
    ``0..variants-1`` uniformly. Two uniforms from a generator keyed by the sample's key, whatever they decide."""
    u = torch.rand(2, generator=keyed_generator(*key, "variant"), dtype=torch.float64).tolist()
    if u[0] < clean_share:
        return -1
    return min(int(u[1] * variants), variants - 1)


# ------------------------------------------------------------------------------------------ the load/augment seam


def _base(dataset: Dataset, index: int) -> tuple[Any, int]:
    while isinstance(dataset, Subset):
        dataset, index = dataset.dataset, int(dataset.indices[index])
    if not (callable(getattr(dataset, "load", None)) and callable(getattr(dataset, "augment", None))):
        raise TypeError(f"{type(dataset).__name__} has no load(index) and augment(sample): finetuning from a store "
                        "needs a dataset that separates loading from its random geometry (the datasets of "
                        "augcomp.data do)")
    return dataset, index


def load_sample(dataset: Dataset, index: int) -> dict[str, Any]:
    """``dataset.load(index)``, through any ``Subset`` wrappers: the sample before its geometry.

    Raises:
        TypeError: the dataset does not separate loading from augmenting.
    """
    base, i = _base(dataset, index)
    return base.load(i)


def augment_sample(dataset: Dataset, sample: dict[str, Any]) -> dict[str, Any]:
    """``dataset.augment(sample)``, through any ``Subset`` wrappers (random draws from torch's global generator)."""
    base, _ = _base(dataset, 0)
    return base.augment(sample)


# ------------------------------------------------------------------------------------------ records of variant sets


def _mix_fields(names: Sequence[str], bpp: tuple[float, float], seed: int) -> dict[str, Any]:
    return {"codecs": list(names), "bpp": [float(bpp[0]), float(bpp[1])], "seed": int(seed)}


def record_variants(store: Any, *, names: Sequence[str], bpp: tuple[float, float], seed: int, variants: int,
                    **about: Any) -> str:
    """Writes (or replaces) the record of a set of variants in ``store``; returns its path.

    A set is one mix (codecs in order, bpp range, seed) and its K; ``about`` adds what people want to see (task,
    split, image count). One file per (mix, K), written whole, so that concurrent writers never clash.
    """
    fields = {**_mix_fields(names, bpp, seed), "variants": int(variants)}
    name = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    store._ensure()
    folder = f"{store.root}/{VARIANTS_DIR}"
    store.fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/{name}.json"
    store._atomic_write(path, json.dumps({**fields, **about}, indent=1, sort_keys=True).encode())
    return path


def variant_sets(store: Any) -> list[dict[str, Any]]:
    """Every record of :func:`record_variants` in ``store``."""
    folder = f"{store.root}/{VARIANTS_DIR}"
    if not store.fs.exists(folder):
        return []
    out = []
    for path in sorted(store.fs.ls(folder, detail=False)):
        if path.endswith(".json"):
            with store.fs.open(path, "rb") as f:
                out.append(json.loads(f.read().decode()))
    return out


def find_variants(store: Any, names: Sequence[str], bpp: tuple[float, float], seed: int) -> int | None:
    """The largest K recorded in ``store`` for this mix (codecs in this order, bpp range, seed), or None."""
    want = _mix_fields(names, bpp, seed)
    ks = [int(r["variants"]) for r in variant_sets(store) if all(r.get(k) == v for k, v in want.items())]
    return max(ks) if ks else None


def precompute_command(task: str, split: str, names: Sequence[str], bpp: tuple[float, float], seed: int,
                       variants: int | str, store: str, data_root: str | None = None,
                       extra: Sequence[str] = ()) -> str:
    """The ``augcomp precompute`` command that fills ``store`` with these variants (for messages)."""
    words = ["augcomp precompute --task", task, *(["--data-root", data_root] if data_root else []), "--split", split,
             "--variants", str(variants), "--train-codecs", ",".join(names), "--train-bpp",
             f"{bpp[0]:g},{bpp[1]:g}" if bpp[0] != bpp[1] else f"{bpp[0]:g}", "--seed", str(seed), *extra,
             "--store", store]
    return " ".join(words)


# ------------------------------------------------------------------------------------------ the source


class StoredVariants:
    """A :class:`~augcomp.data.VariantSource` that decodes a sample's variant from a store of coded files.

    It is called with the loaded image (before its geometry), the variant's codec and target; the entry's key is the
    store's own (image content, codec identity, target). Never encodes: a missing entry raises.

    Args:
        store: a :class:`~augcomp.store.Store` (opened in the training process; DataLoader workers get a copy, with
            the index already read).
        hint: the command that fills the store, for the message of a missing entry.

    Attributes:
        variants: the K recorded for the run's mix (set by :func:`open_variants`; 0 if unknown).
    """

    def __init__(self, store: Any, hint: str = "") -> None:
        self.store, self.hint = store, hint
        self.variants = 0

    def __call__(self, image: Tensor, codec: str, bpp: float, key: SampleKey) -> tuple[Tensor, float]:
        """Returns the decoded variant and its achieved bpp.

        Shape:
            - image: ``(C, H, W)`` uint8; output alike.

        Raises:
            MissingVariantError: the store holds no good entry for this image, codec and target.
        """
        from augcomp import codecs
        from augcomp.store import image_hash, key_for

        module = codecs.get(codec)  # built once per process
        entry_key = key_for(image_hash(image), module, "bpp", bpp)
        entry = self.store.read_one(entry_key)
        if entry is None or (entry.channels, entry.height, entry.width) != tuple(image.shape):
            raise MissingVariantError(
                f"--train-store {self.store.url} has no {codec} variant at {bpp:g} bpp of training image "
                f"{key.index} ({tuple(image.shape)[1]}x{tuple(image.shape)[2]}); fill it first with: {self.hint}")
        pixels = module.decode_file(entry.data, entry.channels)
        return pixels, float(entry.bpp)


def open_variants(url: str, mix: CodecMix, seed: int, hint: str) -> StoredVariants:
    """The source of a finetuning run's stored variants, with ``variants`` set to the K the store records for
    ``mix`` and ``seed``.

    Args:
        url: the store (``--train-store``).
        mix: the finetuning mix (codecs in order, bpp range).
        seed: the run's seed.
        hint: the ``augcomp precompute`` command that fills the store (:func:`precompute_command`).

    Raises:
        MissingVariantError: the store records no variants of this mix.
        augcomp.store.StoreError: ``url`` is not a store.
    """
    from augcomp import codecs as registry
    from augcomp.store import Store

    store = Store(url)
    k = find_variants(store, mix.names, mix.bpp, seed)
    if k is None:
        held = "; ".join(f"{r['variants']} of {','.join(r['codecs'])} at {r['bpp'][0]:g}-{r['bpp'][1]:g} bpp, seed "
                         f"{r['seed']}" for r in variant_sets(store)) or "none"
        raise MissingVariantError(
            f"--train-store {url} holds no variants of the finetuning mix ({','.join(mix.names)} at "
            f"{mix.bpp[0]:g}-{mix.bpp[1]:g} bpp, seed {seed}; it holds: {held}); fill it first with: {hint}")
    # The index and the codecs are made here, once: DataLoader workers, started anew each epoch, inherit them.
    store.refresh()
    for name in mix.names:
        registry.get(name)
    source = StoredVariants(store, hint.replace("--variants K", f"--variants {k}"))
    source.variants = k
    return source


def describe_train_store(url: str, names: Sequence[str], bpp: float | tuple[float, float], seed: int,
                         clean_share: float) -> str:
    """One line for a recipe's plan: the train store, and the K it holds for the run's mix (or that it holds none)."""
    from augcomp.store import Store, StoreError

    mix = CodecMix(names, bpp, clean_share)
    try:
        k = find_variants(Store(url), mix.names, mix.bpp, seed)
    except (StoreError, OSError) as e:
        return f"{url}: cannot be read ({e})"
    if k is None:
        return (f"{url}: holds no variants of this mix and seed (the run will stop before finetuning; fill it with "
                "'augcomp precompute --split <train split> --variants K')")
    return (f"{url}: {k} stored variants per training image, one decoded per sample and epoch ({clean_share:g} of "
            "the samples clean); nothing encoded in finetuning")
