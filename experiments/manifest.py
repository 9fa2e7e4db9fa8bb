"""The run manifest on the experiments side: what binds a run's checkpoints to its config.

Reading and checking ``manifest.json`` is :mod:`sim.manifest` (re-exported here), so the
notebooks' loaders use the same reader as the command line.
"""

from __future__ import annotations

from experiments.config import RunConfig
from sim.manifest import (
    MANIFEST_FILE,
    STATUSES,
    ManifestError,
    NotARunDirError,
    check_manifest,
    config_sha256,
    read_manifest,
    read_manifest_if_any,
)

__all__ = [
    "MANIFEST_FILE",
    "STATUSES",
    "ManifestError",
    "NotARunDirError",
    "check_manifest",
    "config_binding",
    "config_sha256",
    "read_manifest",
    "read_manifest_if_any",
]


def config_binding(config: RunConfig) -> dict[str, str]:
    """What a run's checkpoints are bound to: ``{"config_sha256": ...}`` of its config."""
    return {"config_sha256": config_sha256(config.model_dump(mode="json", by_alias=True))}
