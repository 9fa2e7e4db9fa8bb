"""Fuzz: model output can never crash the parser, containment or the prompt hash.

A seeded generator builds 5,000 hostile "model outputs": JSON-ish objects with huge
integers, lone-surrogate escapes, control tokens, deep nesting, truncation, raw control
characters and NFKC-expanding characters. For every one, ``parse_output`` returns a
status without raising, and ``neutralise`` (of the raw text and of every parsed field)
returns text that holds no special-token string, is valid UTF-8, fits ``max_chars``, and
is a fixed point (neutralising it again changes nothing).
"""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest

from agents.containment import ELLIPSIS, INPUT_FACTOR, neutralise
from agents.llm.base import ChatMessage, Completion, FinishReason, Role
from agents.parsing import ParsedOutput, ParseStatus, parse_output
from agents.prompts import prompt_sha256

N_CASES = 5_000
MAX_CHARS = 120

SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<repo_name>",
    "[control_8]",
    "＜｜im_start｜＞",
    "<\u200b|im_start|\u200b>",
    "<\x00|",
    "|>",
    "system:",
    "### Assistant",
]
ATOMS = [
    "\\ud800",
    "\\udfff",
    "\\ud83d\\ude00",
    "\\u0000",
    "\ufdfa",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\r\n",
    "\n\n\n",
    "\t",
    '"',
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "NaN",
    "-Infinity",
    "1e999",
    "-0",
    "ﬁ",
    "é",
    "漢",
    "word",
]
KEYS = ["answer", "memory_bank", "memory_text", "memory", "bank", "text", "choice", "x"]
# What no neutralised text may contain: anything a tokenizer could read as a control token.
FORBIDDEN = re.compile(r"<[|/!<\[A-Za-z_]|\|>|\[/?[A-Za-z_@][A-Za-z0-9_@]*\]")


def _junk(rng: np.random.Generator, n: int) -> str:
    parts = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.35:
            parts.append(SPECIALS[rng.integers(len(SPECIALS))])
        elif roll < 0.8:
            parts.append(ATOMS[rng.integers(len(ATOMS))])
        else:
            parts.append(chr(int(rng.integers(0x20, 0x3000))))
    return "".join(parts)


def _huge_int(rng: np.random.Generator) -> str:
    digits = int(rng.choice([4_299, 4_301, 5_000, 20_000]))
    return ("-" if rng.random() < 0.3 else "") + "9" * digits


def _value(rng: np.random.Generator, depth: int) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return json.dumps(_junk(rng, int(rng.integers(0, 6))), ensure_ascii=False).replace(
            "\\\\u", "\\u"
        )  # un-escape the \u escapes so the decoder sees lone surrogates and NULs
    if roll < 0.55:
        return _huge_int(rng)
    if roll < 0.65:
        return str(rng.integers(-(10**6), 10**6)) + ("e400" if rng.random() < 0.3 else "")
    if roll < 0.8:
        return _object(rng, depth + 1)
    return "[" + ",".join(_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))) + "]"


def _object(rng: np.random.Generator, depth: int = 0) -> str:
    n = int(rng.integers(0, 5))
    fields = [f'"{KEYS[rng.integers(len(KEYS))]}": {_value(rng, depth)}' for _ in range(n)]
    return "{" + ", ".join(fields) + "}"


def _output(rng: np.random.Generator) -> str:
    kind = int(rng.integers(7))
    if kind == 0:  # a plausible reply with hostile strings inside
        return json.dumps(
            {
                "answer": _junk(rng, 4),
                "memory_bank": _junk(rng, 2),
                "memory_text": _junk(rng, 8),
            },
            ensure_ascii=bool(rng.random() < 0.5),
        ).replace("\\\\u", "\\u")
    if kind == 1:  # random JSON-ish object
        return _object(rng)
    if kind == 2:  # truncated JSON
        text = _object(rng)
        return text[: int(rng.integers(0, len(text) + 1))]
    if kind == 3:  # prose around an object
        return _junk(rng, 5) + _object(rng) + _junk(rng, 5)
    if kind == 4:  # deep nesting
        depth = int(rng.choice([10, 1_000, 5_000]))
        opener = "[" if rng.random() < 0.5 else '{"a":'
        return '{"answer": "x", "n": ' + opener * depth
    if kind == 5:  # a huge number where the answer should be
        return '{"answer": ' + _huge_int(rng) + ', "memory_text": "t"}'
    return _junk(rng, int(rng.integers(0, 40)))


def _assert_contained(text: str) -> None:
    out = neutralise(text, MAX_CHARS)
    assert len(out) <= MAX_CHARS
    assert FORBIDDEN.search(out) is None, (text, out)
    out.encode("utf-8")  # no lone surrogate survives
    assert neutralise(out, MAX_CHARS) == out


def test_parser_and_containment_never_raise_on_fuzzed_outputs() -> None:
    rng = np.random.default_rng(20_261_201)
    statuses: dict[ParseStatus, int] = dict.fromkeys(ParseStatus, 0)
    for i in range(N_CASES):
        text = _output(rng)
        reason = FinishReason.LENGTH if rng.random() < 0.05 else FinishReason.STOP
        parsed = parse_output(Completion(f"r{i}", text, reason, 1, 0, 1))
        assert isinstance(parsed, ParsedOutput)
        statuses[parsed.status] += 1
        for field in (parsed.answer, parsed.bank_name, parsed.text):
            field.encode("utf-8")  # the parser drops lone surrogates
        if parsed.status is not ParseStatus.OK:
            assert (parsed.answer, parsed.bank_name, parsed.text) == ("", "", "")
        _assert_contained(text)
        _assert_contained(parsed.text)
        # What the next step would hash: a prompt holding the neutralised note.
        note = neutralise(parsed.text, MAX_CHARS)
        assert len(prompt_sha256([ChatMessage(Role.USER, note)])) == 64
    # The generator reaches every text status (so the checks above are not vacuous).
    for status in (ParseStatus.OK, ParseStatus.MALFORMED, ParseStatus.EMPTY):
        assert statuses[status] >= 50, statuses
    assert statuses[ParseStatus.TRUNCATED] >= 100, statuses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"answer": "a", "n": ' + "1" * 5_000 + "}", ParsedOutput(ParseStatus.OK, "a")),
        ('{"answer": ' + "9" * 4_301 + "}", ParsedOutput(ParseStatus.MALFORMED)),
        ('{"answer": "a", "n": -' + "7" * 20_000 + "}", ParsedOutput(ParseStatus.OK, "a")),
    ],
)
def test_integers_beyond_pythons_digit_limit_do_not_raise(text: str, expected) -> None:
    assert parse_output(Completion("r", text, FinishReason.STOP, 1, 0, 1)) == expected


def test_lone_surrogates_are_dropped_by_parser_and_containment() -> None:
    text = '{"answer": "a\\ud800b", "memory_bank": "x\\udfff", "memory_text": "t\\ud83du"}'
    parsed = parse_output(Completion("r", text, FinishReason.STOP, 1, 0, 1))
    assert parsed == ParsedOutput(ParseStatus.OK, "ab", "x", "tu")
    assert neutralise("note \ud800 here\udfff", 50) == "note  here"
    # The next step's prompt hash works on what the agent wrote.
    message = ChatMessage(Role.USER, neutralise(json.loads('"\\ud800 hi"'), 50))
    assert len(prompt_sha256([message])) == 64
    # A valid pair from an escape is one character and is kept.
    assert neutralise(json.loads('"\\ud83d\\ude00"'), 50) == "\U0001f600"


def test_length_is_capped_before_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    # A spy on the standard library's normalize (no class of ours is replaced; the real
    # function runs): it sees the capped input, not the million characters. No clock.
    seen: list[int] = []
    normalize = unicodedata.normalize

    def spy(form: str, text: str) -> str:
        seen.append(len(text))
        return normalize(form, text)

    monkeypatch.setattr(unicodedata, "normalize", spy)
    text = "\ufdfa" * 1_000_000  # NFKC expands each into 18 characters
    out = neutralise(text, 300)
    assert seen == [INPUT_FACTOR * 300]
    monkeypatch.undo()
    assert len(out) == 300
    assert out.endswith(ELLIPSIS)
    # An input cut before normalisation is marked as cut even when little of it remains.
    assert neutralise("\u200b" * 10_000 + "tail", 50) == "[...]"
    assert neutralise(neutralise("\u200b" * 10_000, 50), 50) == "[...]"


def test_very_deep_nesting_is_malformed() -> None:
    for opener in ("[", '{"a":', "{"):
        text = '{"answer": "x", "n": ' + opener * 100_000
        parsed = parse_output(Completion("r", text, FinishReason.STOP, 1, 0, 1))
        assert parsed == ParsedOutput(ParseStatus.MALFORMED)
    closed = '{"answer": "x", "n": ' + "[" * 100_000 + "]" * 100_000 + "}"
    parsed = parse_output(Completion("r", closed, FinishReason.STOP, 1, 0, 1))
    assert parsed == ParsedOutput(ParseStatus.MALFORMED)  # too deep for the JSON decoder
