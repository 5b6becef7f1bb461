"""Where neural-codec weights come from, and loading them without ever hanging or silently using random weights.

Resolution order for a CompressAI zoo model (the file name is the basename of the zoo URL, e.g.
``bmshj2018-hyperprior-3-6d87be32.pth.tar``):

1. ``weights=`` given by the user: a checkpoint file (used as is) or a folder holding the zoo file name;
2. the folder in the ``AUGCOMP_WEIGHTS`` environment variable;
3. the torch hub cache (``torch.hub.get_dir()/checkpoints``), where CompressAI's own downloads land;
4. a download into the torch hub cache, after a connectivity check bounded to a few seconds.

Offline and without the file, a :class:`WeightsNotFoundError` names the file and where to put it. Set
``AUGCOMP_OFFLINE=1`` to skip step 4 entirely.

The codec trained by augcomp (``augcomp-tiny``) ships inside the package (``augcomp/weights``): a safetensors file
with one model per level and a JSON of metadata.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augcomp._errors import ArgumentError, AugcompError

__all__ = [
    "ENV_VAR",
    "OFFLINE_ENV_VAR",
    "WeightsNotFoundError",
    "hub_checkpoint_dir",
    "is_online",
    "load_checkpoint",
    "load_into",
    "load_package_states",
    "package_dir",
    "read_state_dict",
    "resolve_zoo_file",
    "save_package_states",
    "zoo_url",
]

ENV_VAR = "AUGCOMP_WEIGHTS"
OFFLINE_ENV_VAR = "AUGCOMP_OFFLINE"
CONNECT_TIMEOUT_S = 3.0
DOWNLOAD_SOCKET_TIMEOUT_S = 30.0

# The Gaussian conditional's CDF tables depend only on its scale table, so the shipped file omits them.
_GC_TABLES = ("gaussian_conditional._quantized_cdf", "gaussian_conditional._offset",
              "gaussian_conditional._cdf_length")


class WeightsNotFoundError(AugcompError, FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable."""


def zoo_url(zoo: str, metric: str, quality: int | None) -> str:
    """URL of a CompressAI zoo checkpoint (``quality=None`` for the variable-rate models)."""
    from augcomp.codecs._compressai_models import compressai

    if quality is None:
        table = compressai("compressai.zoo.image_vbr").model_urls[zoo]
        if metric not in table:
            raise ArgumentError(f"CompressAI has no {metric!r} weights for {zoo!r}; available: {sorted(table)}")
        return table[metric]
    return compressai("compressai.zoo.image").model_urls[zoo][metric][quality]


def hub_checkpoint_dir() -> Path:
    """The folder torch (and CompressAI) download checkpoints into."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline_forced() -> bool:
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def is_online(url: str, timeout: float | None = None) -> tuple[bool, str]:
    """Whether a TCP connection to ``url``'s host (or the configured proxy) opens within ``timeout`` seconds.

    ``timeout`` defaults to :data:`CONNECT_TIMEOUT_S` (3 s).

    Runs in a daemon thread so that a stalled DNS lookup cannot block past the timeout.

    Returns:
        ``(online, reason)``; ``reason`` says why not.
    """
    if _offline_forced():
        return False, f"{OFFLINE_ENV_VAR} is set"
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[str] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append("")
        except OSError as e:
            result.append(f"cannot reach {host}:{port} ({e})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not result:
        return False, f"no answer from {host}:{port} within {timeout:g} s"
    return result[0] == "", result[0]


def _not_found(what: str, filename: str, url: str | None, reason: str, searched: list[Path]) -> WeightsNotFoundError:
    env = os.environ.get(ENV_VAR)
    lines = [
        f"pretrained weights for {what} are not available: expected the file {filename!r}.",
        "Searched: " + ", ".join(str(p) for p in searched) + ".",
    ]
    if url:
        lines.append(f"Download from {url} failed: {reason}.")
    lines.append(
        f"Put {filename} in a folder and point the {ENV_VAR} environment variable at it "
        f"({ENV_VAR} is {'set to ' + repr(env) if env else 'unset'}), or in {hub_checkpoint_dir()}, "
        "or pass weights=<file or folder>; pretrained=False builds random weights (for tests only)."
    )
    err = WeightsNotFoundError(" ".join(lines))
    err.missing_file = filename
    return err


def resolve_zoo_file(what: str, url: str, weights: str | os.PathLike | None = None) -> Path:
    """The local checkpoint for a zoo ``url``, downloading it into the torch hub cache if needed and possible.

    Args:
        what: the model, for messages (``"bmshj2018-hyperprior quality 3 (mse)"``).
        url: the CompressAI zoo URL; its basename is the file name looked for.
        weights: a checkpoint file or a folder given by the user (searched only there).

    Raises:
        WeightsNotFoundError: not on disk and not downloadable (within seconds when offline).
    """
    filename = url.rsplit("/", 1)[-1]
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            if (path / filename).is_file():
                return path / filename
            raise _not_found(what, filename, None, "", [path])
        raise WeightsNotFoundError(f"weights={str(weights)!r} is neither a checkpoint file nor a folder")
    searched = []
    env = os.environ.get(ENV_VAR)
    if env:
        folder = Path(env).expanduser()
        searched.append(folder)
        if (folder / filename).is_file():
            return folder / filename
    hub = hub_checkpoint_dir()
    searched.append(hub)
    if (hub / filename).is_file():
        return hub / filename
    online, reason = is_online(url)
    if not online:
        raise _not_found(what, filename, url, reason, searched)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)  # a stalled transfer raises instead of hanging
    try:
        hub.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(hub / filename), hash_prefix=_hash_prefix(filename), progress=True)
    except Exception as e:  # noqa: BLE001 - any download failure becomes the same actionable error
        raise _not_found(what, filename, url, f"{type(e).__name__}: {e}", searched) from e
    finally:
        socket.setdefaulttimeout(previous)
    return hub / filename


def _hash_prefix(filename: str) -> str | None:
    # CompressAI names end in -<sha256 prefix>.pth.tar, as torch.hub's check_hash expects.
    stem = filename.split(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict in a checkpoint file, keys as saved.

    Reads safetensors files and ``torch.save`` files (``weights_only``, so no code runs); a training checkpoint's
    dictionary is unwrapped from its ``"state_dict"`` or ``"model"`` entry.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        # torch's own message suggests weights_only=False, which would run the file's code: never the fix here.
        raise ArgumentError(
            f"{path} is not a checkpoint augcomp can read safely ({type(err).__name__}). weights= takes a "
            "checkpoint saved with torch.save (a state dict, .pth or .pth.tar) or a .safetensors file, or a folder "
            "of them named as the CompressAI zoo names them"
        ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ArgumentError(f"{path} does not hold a state dict")
    return state


def load_checkpoint(path: Path) -> dict[str, Tensor]:
    """A CompressAI state dict from a ``.pth``/``.pth.tar``/``.safetensors`` checkpoint (see :func:`read_state_dict`),
    with keys of older CompressAI versions renamed."""
    from augcomp.codecs._compressai_models import compressai

    return compressai("compressai.zoo").load_state_dict(read_state_dict(path))


def package_dir() -> Path:
    """The folder of weights shipped inside augcomp."""
    return Path(__file__).resolve().parent.parent / "weights"


def load_package_states(name: str, weights: str | os.PathLike | None = None) -> tuple[dict, list[dict[str, Tensor]]]:
    """Metadata and per-level state dicts of a codec trained by augcomp.

    Args:
        name: codec name; the files are ``<name>.json`` and the safetensors file it names.
        weights: a folder holding them, or the safetensors file (its JSON next to it); default: the package's.

    Returns:
        ``(metadata, states)`` with ``states[k]`` the float32 state dict of level ``k + 1`` (the Gaussian
        conditional's CDF tables are absent: rebuild them from its ``scale_table``).
    """
    if weights is None:
        folder, file = package_dir(), None
    else:
        p = Path(weights).expanduser()
        folder, file = (p.parent, p) if p.is_file() else (p, None)
    meta_path = folder / f"{name}.json"
    if not meta_path.is_file():
        raise WeightsNotFoundError(
            f"weights for {name} are not available: expected {meta_path} (written by recipes/train_codec.py "
            "next to the safetensors file)"
        )
    meta = json.loads(meta_path.read_text())
    file = file or folder / meta["weights_file"]
    if not file.is_file():
        raise WeightsNotFoundError(f"weights for {name} are not available: expected the file {file}")
    from safetensors.torch import load_file

    tensors = load_file(str(file))
    states = []
    for level in range(1, int(meta["levels"]) + 1):
        prefix = f"q{level}."
        states.append({k[len(prefix):]: v.float() if v.is_floating_point() else v
                       for k, v in tensors.items() if k.startswith(prefix)})
    return meta, states


def save_package_states(folder: str | os.PathLike, name: str, states: list[dict[str, Tensor]],
                        meta: dict[str, Any]) -> tuple[Path, Path]:
    """Writes a codec in the format :func:`load_package_states` reads: ``<name>.safetensors`` and ``<name>.json``.

    Args:
        folder: where the two files go (created if needed).
        name: the codec name.
        states: one state dict per level, lowest rate first. The Gaussian conditional's CDF tables are left out
            (they follow from its ``scale_table``); other tensors are saved in their dtype.
        meta: metadata for the JSON; ``name``, ``levels``, ``weights_file`` and ``weights_format`` are filled in.

    Returns:
        ``(weights_file, json_file)``.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"q{k}.{key}": t.detach().contiguous() for k, state in enumerate(states, start=1)
               for key, t in state.items() if key not in _GC_TABLES}
    weights_file = folder / f"{name}.safetensors"
    save_file(tensors, str(weights_file), metadata={"name": name, "format": "q{level}.{state_dict key}"})
    fmt = meta.get("weights_format", "q{level}.{state_dict key}; the Gaussian conditional's tables are rebuilt "
                                     "from its scale_table")
    meta = {"name": name, **meta, "levels": len(states), "weights_file": weights_file.name, "weights_format": fmt}
    json_file = folder / f"{name}.json"
    json_file.write_text(json.dumps(meta, indent=1) + "\n")
    return weights_file, json_file


def load_into(model: torch.nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Loads ``state`` strictly, rebuilding the Gaussian conditional's CDF tables when the state omits them.

    Raises:
        ValueError: the state does not fit the architecture (names ``what``).
    """
    gc = getattr(model, "gaussian_conditional", None)
    if gc is not None and _GC_TABLES[0] not in state and "gaussian_conditional.scale_table" in state:
        gc.update_scale_table(state["gaussian_conditional.scale_table"].tolist(), force=True)
        own = model.state_dict()
        state = {**{k: own[k] for k in _GC_TABLES}, **state}
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise ArgumentError(f"the weights for {what} do not fit {type(model).__name__}: {e}") from e
