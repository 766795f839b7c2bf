"""Every form in which a tool may print or store a secret value, so that ``secrets.redact`` finds
it whatever the tool did to it (pure).

A value leaves us through tools that escape it their own way: Terraform's JSON log is Go's
``encoding/json`` (``&``, ``<``, ``>`` as ``\\u0026``, ``\\u003c``, ``\\u003e``; U+2028/9 escaped),
Python's ``json`` escapes quotes, backslashes and non-ASCII, a URL carries it percent-encoded, a
shell command line quoted, and a Kubernetes Secret or a docker config base64-encoded, often as
part of a longer encoded document. ``forms(value)`` lists them all.
"""

from __future__ import annotations

import base64
import json
import shlex
from urllib.parse import quote, quote_plus

_GO_HTML_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_MIN_BASE64 = 9  # bytes: a shorter value's encoded core would be too short to scrub safely


def _go_json(value: str) -> str:
    """The inside of the JSON string Go's encoding/json writes (HTML-safe, UTF-8 kept)."""
    text = json.dumps(value, ensure_ascii=False)[1:-1]
    for char, escaped in _GO_HTML_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _base64_cores(value: str) -> set[str]:
    """What any base64 text holding ``value`` contains, whatever the value's offset in the encoded
    bytes (0, 1 or 2 modulo 3): the encoding of the value at that offset, less its first and last
    characters, which also depend on the neighbouring bytes."""
    raw = value.encode()
    if len(raw) < _MIN_BASE64:
        return set()
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        start = -(-offset * 4 // 3)  # characters that still mix in the bytes before the value
        end = len(encoded) - (1 if (offset + len(raw)) % 3 else 0)  # and the last, mixed with what follows
        core = encoded[start:end]
        if len(core) >= 8:
            cores.update({core, core.replace("+", "-").replace("/", "_")})  # standard and URL-safe alphabets
    return cores


def forms(value: str) -> set[str]:
    """``value`` as written raw and by JSON (Python and Go), URL, shell and base64 encoders."""
    if not value:
        return set()
    found = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], _go_json(value),
             quote(value, safe=""), quote_plus(value, safe=""), shlex.quote(value)}
    found |= _base64_cores(value)
    return {f for f in found if f}
