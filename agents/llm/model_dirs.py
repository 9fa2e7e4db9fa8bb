"""Where a model's weights are on this machine: a local directory or the Hugging Face cache.

Engines that load weights themselves (vLLM) are given a model directory or a hub name.
Nothing here downloads anything or imports an inference library: it only looks at the
file system, so a config naming weights that are not on this machine fails at
validation, with the path it looked for, instead of minutes later inside the engine.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The file every Hugging Face model directory holds.
CONFIG_FILE = "config.json"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, as ``huggingface_hub`` resolves it.

    ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``) if set, else
    ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (``$XDG_CACHE_HOME`` honoured).
    """
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def cached_snapshot(repo_id: str) -> Path | None:
    """A snapshot directory of ``repo_id`` in the hub cache that holds a config, or None."""
    snapshots = hf_hub_cache() / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    for snapshot in sorted(snapshots.iterdir()):
        if (snapshot / CONFIG_FILE).is_file():
            return snapshot
    return None


def _looks_like_path(model: str) -> bool:
    """Whether ``model`` can only be a path (a hub name is ``name`` or ``owner/name``)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def local_model_problem(model: str) -> str | None:
    """Why the weights of ``model`` are not on this machine, or None when they are.

    ``model`` is local when it is a directory holding ``config.json``, or a hub name
    (``owner/name``) with a snapshot in the Hugging Face cache.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            return None
        return (
            f"model directory {str(path)!r} has no {CONFIG_FILE}: it is not a Hugging Face "
            "model directory (convert a GGUF with agents.llm.convert, or save_pretrained)"
        )
    if _looks_like_path(model):
        return f"model directory {str(path)!r} does not exist"
    if path.exists():
        return f"model = {model!r} is a file, not a model directory"
    if cached_snapshot(model) is not None:
        return None
    return (
        f"model = {model!r} is neither a local directory nor in the Hugging Face cache "
        f"({hf_hub_cache()}); download it first (huggingface-cli download {model}), point "
        "model at a local model directory, or set allow_download = true"
    )
