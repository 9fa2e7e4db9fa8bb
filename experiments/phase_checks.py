"""Checks of the reflection and value-questionnaire sections of a run config.

Cross-field errors (:func:`phase_errors`, from the specs alone):

* ``reflection`` and ``values`` need an LLM policy (an engine to ask);
* ``reflection.bank`` must name a layer the bank layout has, so the agents can write
  their beliefs.

Resource errors (:func:`battery_errors`): ``values.battery_file`` (or the packaged
battery) must load as a valid battery, checked before any model loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.values import load_battery

if TYPE_CHECKING:
    from experiments.schema import RunConfig


def _layers(config: RunConfig) -> list[str]:
    banks = config.banks
    present = {
        "private": banks.private,
        "neighbourhood": banks.neighbourhood,
        "community": banks.community,
        "edge": banks.edge,
        "global": banks.global_,
    }
    return [name for name, layer in present.items() if layer is not None]


def phase_errors(config: RunConfig) -> list[str]:
    """Cross-field errors of ``reflection`` and ``values`` (see the module docstring)."""
    errors = []
    llm = config.policy.kind == "llm"
    if config.reflection is not None:
        if not llm:
            errors.append(
                f"reflection: needs an LLM policy (policy.kind = 'llm'); the "
                f"{config.policy.kind!r} policy has no engine to reflect with"
            )
        layers = _layers(config)
        if config.reflection.bank not in layers:
            errors.append(
                f"reflection.bank = {config.reflection.bank!r}: the agents cannot write such "
                f"a bank; the layout's layers are {layers} (add [banks."
                f"{config.reflection.bank}] or name one of them)"
            )
    if config.values is not None and not llm:
        errors.append(
            f"values: needs an LLM policy (policy.kind = 'llm'); the {config.policy.kind!r} "
            "policy has no engine to answer questionnaires"
        )
    return errors


def battery_errors(config: RunConfig) -> list[str]:
    """Why the questionnaire battery cannot be loaded, if it cannot."""
    if config.values is None:
        return []
    try:
        load_battery(config.values.battery_file)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        return [str(err)]
    return []
