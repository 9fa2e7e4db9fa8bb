"""docs/config-reference.md is generated from the schema and must be current."""

from __future__ import annotations

import re
from pathlib import Path

from experiments.config import RunConfig
from experiments.reference import REFERENCE_PATH, generate

ROOT = Path(__file__).resolve().parents[2]


def test_committed_reference_is_current():
    committed = (ROOT / REFERENCE_PATH).read_text()
    assert committed == generate(), (
        "docs/config-reference.md is out of date: run `python -m experiments.reference`"
    )


def test_reference_lists_every_top_level_key_with_its_default():
    text = generate()
    for name, field in RunConfig.model_fields.items():
        assert f"| `{field.alias or name}` |" in text
    assert "| `steps` | integer | `20` | >= 1 | Number of steps to run. |" in text
    assert "| `graph.k` | integer | required |" in text
    assert '`policy.rule` | string | `"repeated_exposure"` | one of' in text
    assert "| `banks.global.capacity` | integer | `256` | >= 1 |" in text
    assert "| `sweep.replicates` | integer | unset | >= 1; <= 100000 |" in text
    # A variant's kind must be given (it selects the variant): documented as required.
    assert '| `guards[].kind` | string | required | one of `"pattern"` |' in text
    assert '| `policy.kind` | string | required | one of `"contagion"` |' in text


def _rows(text: str) -> list[list[str]]:
    """The cells of every key row (a ``\\|`` inside a cell is not a separator)."""
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in text.splitlines()
        if line.startswith("| `")
    ]


def test_every_key_has_a_description():
    rows = _rows(generate())
    assert len(rows) > 250
    assert all(len(cells) == 5 for cells in rows)
    assert [cells[0] for cells in rows if not cells[4]] == []
    # Bounds that the specs check in validators (not in field metadata) are described.
    assert [
        "`graph.k`",
        "integer",
        "required",
        "",
        "Neighbours per agent: an even integer with 2 <= k < n.",
    ] in rows
    assert [
        "`graph.p`",
        "float",
        "required",
        "",
        "Probability that a pair of agents is joined, in [0, 1].",
    ] in rows


def test_header_states_the_cross_field_checks():
    text = generate()
    assert "embedding detectors only\nwith their packaged model installed" in text
    assert "no embedding detectors" not in text


def test_docstring_roles_become_markdown_and_constants_their_values():
    text = generate()
    assert re.findall(r":\w+:`", text) == []
    assert "(at most 3 consecutive words in common)" in text
    assert "A sweep has at most 100000 runs" in text
    assert "If true, `build_graph` fails when the built graph is disconnected." in text


def test_readme_names_every_top_level_key():
    readme = (ROOT / "README.md").read_text()
    configs = readme.split("### Configs", 1)[1].split("Every key, its type", 1)[0]
    keys = [field.alias or name for name, field in RunConfig.model_fields.items()]
    assert [key for key in keys if key not in configs] == []
