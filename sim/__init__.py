"""The simulation core: model, memory store, retrieval, memes, tracking, output.

The public API is importable from here (``from sim import MemeticModel``);
each name is imported from its module on first use, so importing one module of the
package never loads the others.
"""

from __future__ import annotations

from sim.exports import lazy_exports

#: Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "MemeticModel": "sim.model",
    "Injection": "sim.model",
    "ENVIRONMENT": "sim.memory",
    "MemoryStore": "sim.memory",
    "NewEntries": "sim.memory",
    "MemeKind": "sim.memes",
    "MemeSpec": "sim.memes",
    "PlacementSpec": "sim.memes",
    "DetectorSpec": "sim.memes",
    "CanaryDetectorSpec": "sim.memes",
    "LexicalDetectorSpec": "sim.memes",
    "EmbeddingDetectorSpec": "sim.memes",
    "JudgeDetectorSpec": "sim.memes",
    "MemorySpec": "sim.memory_spec",
    "RetrievalSpec": "sim.retrieval",
    "Retrieval": "sim.retrieval",
    "Retriever": "sim.retrieval",
    "ForgettingSpec": "sim.forgetting",
    "TurnoverSpec": "sim.turnover",
    "AgentState": "sim.tracking",
    "Tracker": "sim.tracking",
    "Detector": "sim.detectors",
    "Embedder": "sim.detectors",
    "MemeBook": "sim.memebook",
    "build_detector": "sim.detectors",
    "Policy": "sim.policy",
    "PolicyOutput": "sim.policy",
    "StepContext": "sim.policy",
    "WriteProposals": "sim.policy",
    "Adoptions": "sim.policy",
    "GuardSpec": "sim.guards",
    "build_guards": "sim.guards",
    "State": "sim.state",
    "CheckpointError": "sim.checkpoint",
    "save_checkpoint": "sim.checkpoint",
    "load_checkpoint": "sim.checkpoint",
    "latest_checkpoint": "sim.checkpoint",
    "ManifestError": "sim.manifest",
    "read_manifest": "sim.manifest",
    "Run": "sim.run",
    "load_run": "sim.run",
    "TextTable": "sim.texts",
    "words": "sim.texts",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
