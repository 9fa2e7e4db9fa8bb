"""``python -m agents.llm.convert``, the documented conversion command, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_convert_command_runs_without_a_double_import_warning() -> None:
    # A usage error exits before any conversion; the package import is what is checked:
    # were agents.llm.convert imported by the package, runpy would warn that it runs a
    # module already in sys.modules.
    done = subprocess.run(
        [sys.executable, "-m", "agents.llm.convert", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "usage: python -m agents.llm.convert [OUT_DIR]\n"
