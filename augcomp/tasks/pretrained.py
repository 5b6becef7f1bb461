"""Pretrained weights for the tasks' models (timm, torchvision), failing within seconds when they cannot be had.

Asked for weights that are not cached, timm's Hugging Face download retries for most of a minute before giving up,
and ``HF_HUB_OFFLINE`` only helps when it is set before ``huggingface_hub`` is imported. So before a download starts,
the weights are looked up in the caches, and when they are missing while offline (``AUGCOMP_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``, read at every call) or while the host does not answer within a few seconds, a
:class:`PretrainedUnavailableError` says what to do instead. Cached weights load from their file without any network
access.
"""

from __future__ import annotations

import enum
import inspect
import os
import typing
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augcomp.tasks.base import PretrainedUnavailableError

__all__ = ["OFFLINE_VARS", "create_timm", "offline_reason", "require_torchvision_weights"]

OFFLINE_VARS = ("AUGCOMP_OFFLINE", "HF_HUB_OFFLINE")
# What timm looks for in a Hugging Face repository when the pretrained config names no file (safetensors first).
_HF_FILES = ("model.safetensors", "pytorch_model.safetensors", "pytorch_model.bin",
             "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def offline_reason() -> str | None:
    """Why downloads are off (``"AUGCOMP_OFFLINE is set"``), or None when neither variable of :data:`OFFLINE_VARS`
    is set to a true value."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]} is set"
    return None


def _cannot_download(url: str) -> str | None:
    """Why nothing can be downloaded from ``url`` now, or None when its host answers within a few seconds."""
    reason = offline_reason()
    if reason is not None:
        return reason
    from augcomp.codecs.weights import is_online

    online, why = is_online(url)
    return None if online else why


def _hf_cached(repo_id: str, filenames: tuple[str, ...]) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in filenames:
        path = try_to_load_from_cache(repo_id, name)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def _hub_cached(url: str | None) -> str | None:
    if not url:
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlsplit(url).path)
    return str(path) if path.is_file() else None


def _timm_unavailable(name: str, reason: str) -> PretrainedUnavailableError:
    return PretrainedUnavailableError(
        f"pretrained weights for the timm model {name!r} could not be obtained ({reason}). "
        "When offline, put the weights in the Hugging Face cache (HF_HOME) beforehand, pass --checkpoint PATH "
        "(a state dict of this model), or train the clean model here with --clean-epochs N."
    )


def _timm_local_source(name: str) -> dict[str, Any] | None:
    """A ``pretrained_cfg_overlay`` that loads cached weights from their file when downloads are impossible; None when
    timm may go ahead (online, or weights that need no download).

    Raises:
        PretrainedUnavailableError: downloads are impossible and the weights are not cached.
    """
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - an unknown name: timm itself raises the clearer error
        return None
    if cfg is None or cfg.file or cfg.state_dict:
        return None
    hub_id = cfg.hf_hub_id
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
    cached = (_hf_cached(hub_id, files) if hub_id else None) or _hub_cached(cfg.url)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if hub_id else cfg.url
    if not endpoint:
        return None
    reason = _cannot_download(endpoint)
    if reason is None:
        return None
    if cached is not None:
        # An empty source makes timm load the file instead of asking the hub first.
        return {"file": cached, "source": ""}
    where = f"Hugging Face repository {hub_id}" if hub_id else cfg.url
    raise _timm_unavailable(name, f"{reason}, and the weights ({where}) are not in the cache")


def create_timm(name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` that turns a failed weight download into a clear :class:`PretrainedUnavailableError`,
    within seconds when offline."""
    import timm

    if pretrained:
        overlay = _timm_local_source(name)
        if overlay is not None:
            kwargs["pretrained_cfg_overlay"] = {**kwargs.get("pretrained_cfg_overlay", {}), **overlay}
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if not pretrained or "Unknown model" in str(e):
            raise
        raise _timm_unavailable(name, f"{type(e).__name__}: {e}") from e
    except (OSError, ValueError, ConnectionError, ImportError) as e:
        if not pretrained:
            raise
        raise _timm_unavailable(name, f"{type(e).__name__}: {e}") from e


def _torchvision_urls(name: str, full: bool) -> list[str]:
    """The download URL of a torchvision model's default weights (``full``) or of its backbone's; empty when the
    builder does not say."""
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
        param = inspect.signature(builder).parameters["weights" if full else "weights_backbone"]
        kinds = [a for a in typing.get_args(param.annotation) if isinstance(a, type) and issubclass(a, enum.Enum)]
        return [kinds[0].DEFAULT.url] if kinds else []
    except (KeyError, ValueError, AttributeError, TypeError):
        return []


def require_torchvision_weights(name: str, full: bool) -> None:
    """Fails fast when a torchvision model's default weights (``full``, else its backbone's) are neither in the torch
    hub cache nor downloadable now.

    Raises:
        PretrainedUnavailableError: offline (or the host does not answer) and the file is not cached.
    """
    for url in _torchvision_urls(name, full):
        if _hub_cached(url) is not None:
            continue
        reason = _cannot_download(url)
        if reason is not None:
            raise PretrainedUnavailableError(
                f"pretrained weights for the torchvision detector {name!r} could not be obtained ({reason}, and "
                f"{os.path.basename(url)} is not in {Path(torch.hub.get_dir()) / 'checkpoints'}). When offline, put "
                "them in the torch hub cache beforehand, pass --checkpoint PATH (a state dict of this model), or "
                "train the clean model here with --clean-epochs N."
            )
