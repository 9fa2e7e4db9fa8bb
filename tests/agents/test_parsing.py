"""Parsing of model output: good, malformed, truncated, empty and failed completions."""

from __future__ import annotations

import json

import pytest

from agents.llm.base import Completion, FinishReason
from agents.output_schema import act_schema_dict, json_schema, probe_schema_dict
from agents.parsing import (
    ParsedOutput,
    ParseStatus,
    first_json_object,
    memory_number,
    parse_output,
)


def _c(text: str, reason: FinishReason = FinishReason.STOP) -> Completion:
    return Completion("r", text, reason, 10, 0, 5)


def test_flat_output_with_write() -> None:
    text = '{"answer": "Done.", "memory_bank": "global", "memory_text": "Use seeds."}'
    parsed = parse_output(_c(text))
    assert parsed == ParsedOutput(ParseStatus.OK, "Done.", "global", "Use seeds.")
    assert parsed.wants_write


def test_output_without_write() -> None:
    parsed = parse_output(_c('{ "answer" : "Hi" , "memory_bank" : "", "memory_text" : "x" }'))
    assert parsed == ParsedOutput(ParseStatus.OK, "Hi", "", "")
    assert not parsed.wants_write
    assert parse_output(_c('{"answer": "Hi"}')) == ParsedOutput(ParseStatus.OK, "Hi")


def test_nested_memory_form_is_accepted() -> None:
    text = '{"answer": "a", "memory": {"bank": "private:0", "text": "t"}}'
    assert parse_output(_c(text)) == ParsedOutput(ParseStatus.OK, "a", "private:0", "t")
    assert parse_output(_c('{"answer": "a", "memory": null}')) == ParsedOutput(ParseStatus.OK, "a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"answer": "a", "memory_bank": null, "memory_text": null, "choice": "B"}',
            ParsedOutput(ParseStatus.OK, "a", choice="B"),
        ),
        ('{"answer": "a", "choice": null, "forward": null}', ParsedOutput(ParseStatus.OK, "a")),
        (
            '{"answer": "a", "memory_bank": "private:0", "memory_text": "", "forward": 2}',
            ParsedOutput(ParseStatus.OK, "a", "private:0", forward="2"),
        ),
        (
            '{"answer": "a", "memory": {"bank": null, "text": null}, "choice": "A"}',
            ParsedOutput(ParseStatus.OK, "a", choice="A"),
        ),
        # A boolean or a fraction is no memory number: the reply is still malformed.
        ('{"answer": "a", "forward": true}', ParsedOutput(ParseStatus.MALFORMED)),
        ('{"answer": "a", "forward": 1.5}', ParsedOutput(ParseStatus.MALFORMED)),
        # The answer itself may not be null.
        ('{"answer": null}', ParsedOutput(ParseStatus.MALFORMED)),
    ],
)
def test_null_optional_fields_and_an_integer_forward_keep_the_reply(
    text: str, expected: ParsedOutput
) -> None:
    assert parse_output(_c(text)) == expected


def test_json_embedded_in_prose_is_extracted() -> None:
    text = 'Sure! Here it is: {"answer": "x {y}", "memory_bank": "b", "memory_text": "t"} bye'
    assert parse_output(_c(text)) == ParsedOutput(ParseStatus.OK, "x {y}", "b", "t")
    assert first_json_object('a {"k": "}"} b') == '{"k": "}"}'
    assert first_json_object("no braces") is None
    assert first_json_object('{ {"a": 1} tail') == '{"a": 1}'
    assert first_json_object("{" * 100_000) is None


def test_raw_control_characters_in_strings_are_tolerated() -> None:
    assert parse_output(_c('{"answer": "a\tb"}')).answer == "a\tb"


@pytest.mark.parametrize(
    "text",
    [
        "I think the answer is 42.",
        '{"answer": "unterminated',
        '{"memory_bank": "x"}',
        '{"answer": 42}',
        '["answer", "x"]',
        '{"answer": "a", "memory": "global"}',
        "{" * 5000,
    ],
)
def test_malformed(text: str) -> None:
    assert parse_output(_c(text)) == ParsedOutput(ParseStatus.MALFORMED)


def test_truncated_wins_even_if_text_parses() -> None:
    good = '{"answer": "a", "memory_bank": "b", "memory_text": "c"}'
    assert parse_output(_c(good, FinishReason.LENGTH)).status is ParseStatus.TRUNCATED
    assert parse_output(_c('{"answer": "a', FinishReason.LENGTH)).status is ParseStatus.TRUNCATED


def test_empty_and_engine_error() -> None:
    assert parse_output(_c("   \n")).status is ParseStatus.EMPTY
    failed = Completion.failed("r", "boom")
    assert parse_output(failed) == ParsedOutput(ParseStatus.ENGINE_ERROR)


def test_schemas_are_canonical_and_bounded() -> None:
    schema = json.loads(json_schema(100, 200))
    assert json_schema(100, 200) == json.dumps(schema, sort_keys=True)
    assert schema["required"] == ["answer", "memory_bank", "memory_text"]
    assert schema["properties"]["answer"]["pattern"] == '^[^"\\\\\\n]{0,100}$'
    act = act_schema_dict(["private:0", "global", "private:0"], 10, 20)
    assert act["properties"]["memory_bank"]["enum"] == ["", "global", "private:0"]
    assert probe_schema_dict(30)["required"] == ["answer"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        (" 12 ", 12),
        ("007", 7),
        ("999999", 999999),
        ("0", None),
        ("", None),
        ("-1", None),
        ("+1", None),
        ("1.0", None),
        ("1e2", None),
        ("one", None),
        ("1000000", None),  # more than MAX_NUMBER_DIGITS digits
        ("9" * 5000, None),  # int() would raise: more than 4,300 digits
        ("\u00b2", None),  # superscript two: isdigit() is True, int() raises
        ("\u2460", None),  # circled one: likewise
        ("\u0663", None),  # Arabic-Indic three: int() reads 3; not a number the schema allows
        ("\uff11", None),  # fullwidth one
        ("1\x00", None),
    ],
)
def test_memory_number_takes_only_ascii_digits(value: str, expected: int | None) -> None:
    assert memory_number(value) == expected
