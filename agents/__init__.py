"""What an agent is: the Mesa agent, policies (contagion, LLM), prompts and engines.

The public API is importable from here (``from agents import MemeticAgent``);
each name is imported from its module on first use, so importing one module of the
package never loads the others.
"""

from __future__ import annotations

from sim.exports import lazy_exports

#: Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "MemeticAgent": "agents.agent",
    "ContagionSpec": "agents.contagion",
    "ContagionPolicy": "agents.contagion",
    "LLMPolicySpec": "agents.llm_policy",
    "LLMPolicy": "agents.llm_policy",
    "PolicySpec": "agents.policies",
    "build_policy": "agents.policies",
    "Persona": "agents.personas",
    "load_personas": "agents.personas",
    "Task": "agents.tasks",
    "load_tasks": "agents.tasks",
    "ValuesSpec": "agents.values",
    "Battery": "agents.values",
    "load_battery": "agents.values",
    "ReflectionSpec": "agents.reflection",
    "Engine": "agents.llm",
    "EngineSpec": "agents.llm",
    "GenerationRequest": "agents.llm",
    "Completion": "agents.llm",
    "build_engine": "agents.llm",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
