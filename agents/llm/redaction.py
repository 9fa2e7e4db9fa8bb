"""Redaction of credentials from text that an engine stores or reports.

A server may echo request headers (``Authorization: Bearer <key>``) or the key itself in
an error body or even in a reply; such text must not reach ``completions.jsonl``, the
``generations`` table or a log. :func:`redact` removes:

* every occurrence of each given secret value, also in its JSON-escaped and
  percent-encoded spellings (how an echoing server may quote it);
* credential-shaped patterns whatever the key: ``Bearer <token>``, ``Basic <token>``,
  the value of an ``Authorization``, ``api-key``/``api_key``/``x-api-key`` field
  (header, JSON or query style), and OpenAI-style ``sk-...`` keys.

Each is replaced by :data:`REDACTED`. Redact before truncating, or a cut key escapes the
exact-value match.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable

#: What replaces a secret.
REDACTED = "[REDACTED]"
#: Secrets shorter than this are not searched for (a 1-3 character "key" would shred text).
MIN_SECRET_CHARS = 4

_TOKEN = r"[A-Za-z0-9._~+/=\-]{8,}"
_PATTERNS = (
    # "Bearer sk-...", "Basic dXNlcjpwYXNz": the scheme is kept, the credential is not.
    re.compile(rf"(?i)\b(bearer|basic)(\s+){_TOKEN}"),
    # authorization / api key fields: `Authorization: x`, `"api_key": "x"`, `api-key=x`.
    re.compile(
        r"""(?i)((?:authorization|x-api-key|api[-_]?key)["']?\s*[:=]\s*["']?)()"""
        r"""(?!\[REDACTED\])(?!(?:bearer|basic)\s)[^\s"'&,;}]{4,}"""
    ),
    # OpenAI-style keys (two empty groups keep the replacement uniform).
    re.compile(r"\b()()sk-[A-Za-z0-9_\-]{16,}"),
)


def _spellings(secret: str) -> list[str]:
    """The ways ``secret`` may appear in echoed text, longest first."""
    spelled = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
    }
    return sorted(spelled, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with the given secret values and credential patterns redacted.

    Args:
        text: Text that may contain credentials (an error message, a reply).
        secrets: Exact secret values to remove (e.g. the API key in use); values shorter
            than :data:`MIN_SECRET_CHARS` are ignored.

    Returns:
        The text with every match replaced by :data:`REDACTED` (unchanged if none).
    """
    for secret in secrets:
        if len(secret) >= MIN_SECRET_CHARS:
            for spelling in _spellings(secret):
                text = text.replace(spelling, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text
