r"""Prompt containment: make agent-written text safe to place inside another agent's prompt.

Memory entries are written by agents and read by others, so their text is untrusted.
Chat templates turn special-token strings inside message text into real control tokens:
a memory holding ``<|im_end|>`` + newline + ``<|im_start|>system ...`` would open a fake
system turn in the reader's prompt. :func:`neutralise` defuses such text while keeping it readable:

0. the input is first cut to ``INPUT_FACTOR * max_chars`` characters (the result can
   hold no more anyway; NFKC may expand one character into up to 18, so normalising 1 MB
   of U+FDFA would otherwise take seconds), and lone surrogates (code points
   U+D800-U+DFFF, e.g. from a ``\ud800`` JSON escape; they cannot be encoded as UTF-8)
   are dropped;
1. line and paragraph separators become newlines; control characters other than newline
   and tab are removed, as are format characters (zero-width, bidi overrides, BOM, ...);
2. Unicode NFKC normalisation (full-width look-alikes such as ``＜｜`` become ASCII, so
   the next steps see them). It comes after step 1, so that characters a removed one
   separated (``e``, U+200B, U+0301) are composed too: otherwise a second pass would
   compose them (``é``), and neutralising would not be idempotent. NFKC never yields a
   character step 1 removes;
3. every special-token-like string is broken: a space is put after every ``<`` that
   starts a tag-like run (``<|im_start|>``, ``<s>``, ``</s>``, ``<repo_name>``,
   ``<<SYS>>``), inside every ``|>``, and after ``[`` of bracket tags: a bracketed word of
   letters, digits, ``_`` and ``@`` that starts with a letter, ``_`` or ``@`` (Mistral's
   ``[INST]``, ``[/INST]``, ``[TOOL_CALLS]`` and ``[control_8]``, GLM's ``[gMASK]``,
   Gemma's ``[@BOS@]``; ``[1]`` and ``[a b]`` stay), so that no tokenizer can read them as
   one control token;
4. role headers at the start of a line (``system:``, ``Assistant:``, ``### System``,
   ``### Response:``) become ``(system)`` (the role in brackets), so they cannot pose as
   a new turn;
5. runs of blank lines collapse into one newline and the text is stripped;
6. the text is capped at ``max_chars`` characters, ending with :data:`ELLIPSIS` when cut
   (here or in step 0).

The function never raises on any ``str`` and is idempotent: neutralising neutralised text
changes nothing. Its result is valid Unicode (encodable as UTF-8).
"""

from __future__ import annotations

import re
import unicodedata

#: Appended to text cut at ``max_chars``.
ELLIPSIS = " [...]"
#: The smallest length cap that keeps a character besides the ellipsis.
MIN_CHARS = len(ELLIPSIS) + 1
#: At most ``INPUT_FACTOR * max_chars`` characters of the input are processed.
INPUT_FACTOR = 4

_SURROGATES = re.compile(r"[\ud800-\udfff]")

_ROLES = (
    "system",
    "assistant",
    "user",
    "human",
    "ai",
    "developer",
    "tool",
    "function",
    "instruction",
    "instructions",
    "response",
    "input",
    "output",
)
_ROLE_ALT = "|".join(_ROLES)
# A role header at a line start: optional markdown hashes or a bracket/angle wrapper,
# the role word, then a colon, the end of the line, or (after hashes) anything.
_ROLE_HEADER = re.compile(
    rf"^[ \t>*_-]*(?:#+[ \t]*(?P<hashed>{_ROLE_ALT})\b[ \t]*:?"
    rf"|(?P<plain>{_ROLE_ALT})[ \t]*(?::|$))",
    re.IGNORECASE | re.MULTILINE,
)
# '<' that starts a tag-like run: followed by '|', '/', '!', '<', '[', a letter or '_'.
_TAG_OPEN = re.compile(r"<(?=[|/!<\[A-Za-z_])")
_PIPE_CLOSE = re.compile(r"\|>")
# '[' of a bracket tag such as [INST], [/INST], [SYS_PROMPT], [control_8], [gMASK], [@BOS@].
_BRACKET_TAG = re.compile(r"\[(?=/?[A-Za-z_@][A-Za-z0-9_@]*\])")
_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n)+")


def _keep(char: str) -> bool:
    if char in "\n\t":
        return True
    category = unicodedata.category(char)
    # Cc: control characters; Cf: format characters (zero-width, bidi, BOM, soft hyphen);
    # Cs: surrogates (none survive step 0).
    return category not in ("Cc", "Cf", "Cs")


def drop_surrogates(text: str) -> str:
    r"""Return ``text`` without lone surrogate code points (U+D800-U+DFFF).

    Python strings may hold them (``json.loads('"\\ud800"')``), but they cannot be
    encoded as UTF-8, so hashing, Parquet and JSON-with-UTF-8 writers would fail on them.
    """
    return _SURROGATES.sub("", text)


def neutralise(text: str, max_chars: int) -> str:
    """Return ``text`` made safe to embed in a prompt (see the module docstring).

    Args:
        text: Untrusted, agent-written text.
        max_chars: Maximum length of the result, at least ``len(ELLIPSIS) + 1``.

    Returns:
        The neutralised text, at most ``max_chars`` characters long, without lone
        surrogates.

    Raises:
        ValueError: ``max_chars`` is too small to hold the ellipsis marker and one character.
    """
    if max_chars < len(ELLIPSIS) + 1:
        raise ValueError(f"max_chars = {max_chars}: must be at least {len(ELLIPSIS) + 1}")
    limit = INPUT_FACTOR * max_chars
    cut = len(text) > limit
    text = drop_surrogates(text[:limit])
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n").replace("\x85", "\n")
    text = "".join(ch for ch in text if _keep(ch))
    text = unicodedata.normalize("NFKC", text)
    text = _TAG_OPEN.sub("< ", text)
    text = _PIPE_CLOSE.sub("| >", text)
    text = _BRACKET_TAG.sub("[ ", text)
    text = _ROLE_HEADER.sub(_role_replacement, text)
    text = _BLANK_RUNS.sub("\n", text).strip()
    if cut or len(text) > max_chars:
        text = (text[: max_chars - len(ELLIPSIS)].rstrip() + ELLIPSIS).strip()
    return text


def _role_replacement(match: re.Match[str]) -> str:
    role = (match.group("hashed") or match.group("plain")).lower()
    return f"({role})"
