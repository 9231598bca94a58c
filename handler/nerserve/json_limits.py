"""JSON from a client, parsed within bounds of size and nesting depth checked before the parser runs.

``json.loads`` recurses once per nesting level: a 2 KB body ``[[[[...]]]]`` nested ~1,000 deep raises
RecursionError, which is neither a ValueError nor a client error in most callers' eyes, and which failed whole
TorchServe batches. ``loads_bounded`` measures the size first, then the depth with a linear scan (strings
removed, then a running count of brackets, all in C-level loops), and only then parses. Every problem is one
``JsonBodyError`` with the HTTP status it deserves: 413 for size, 400 for depth, encoding and syntax.

No dependencies beyond the standard library: the gateway and the TorchServe handler both import it.
"""

from __future__ import annotations

import json
import re
from typing import Any

DEFAULT_MAX_DEPTH = 64  # the deepest body any protocol here sends (KServe v2) is 5 levels

# A JSON string, escapes included, as UTF-8 bytes (no byte of a multi-byte character is '"' or '\\'). An
# unterminated string is left in place: the parser reports it.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Objects and arrays nest alike: '{' -> '[', '}' -> ']', every other byte deleted.
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


class JsonBodyError(ValueError):
    """A body that cannot be accepted as JSON: ``status`` is 413 (too large) or 400 (too deep, not UTF-8, not
    JSON); ``message`` says which limit or where, never quoting the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def loads_bounded(data: bytes | bytearray | str, max_depth: int = DEFAULT_MAX_DEPTH, max_bytes: int = 1 << 20) -> Any:
    """The JSON value of ``data`` (bytes must be UTF-8); raises JsonBodyError when it is over ``max_bytes``
    (UTF-8 bytes), nested deeper than ``max_depth`` arrays/objects, not UTF-8 or not JSON."""
    if max_depth < 1 or max_bytes < 1:
        raise ValueError(f"max_depth and max_bytes must be positive, got {max_depth} and {max_bytes}")
    if isinstance(data, (bytes, bytearray)):
        if len(data) > max_bytes:
            raise JsonBodyError(413, f"the JSON body is {len(data)} bytes, over the limit of {max_bytes}")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as err:
            raise JsonBodyError(400, f"the JSON body is not valid UTF-8 (byte {err.start})") from None
    else:
        text = data
        size = utf8_size(text, max_bytes)
        if size > max_bytes:
            raise JsonBodyError(413, f"the JSON body is {size} bytes, over the limit of {max_bytes}")
    if deeper_than(data if isinstance(data, (bytes, bytearray)) else text, max_depth):
        raise JsonBodyError(400, f"the JSON body is nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JsonBodyError(
            400, f"the body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        ) from None
    except ValueError as err:  # an integer over Python's digit limit, among others
        raise JsonBodyError(400, f"the body is not valid JSON ({err.__class__.__name__})") from None
    except RecursionError:  # not reachable within DEFAULT_MAX_DEPTH; kept for callers that pass a huge one
        raise JsonBodyError(400, "the JSON body is nested too deeply") from None


def utf8_size(text: str, limit: int) -> int:
    """The UTF-8 size of ``text``, exact when it could be over ``limit`` (a character takes 1-4 bytes)."""
    if len(text) > limit or 4 * len(text) > limit:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text)


def deeper_than(data: bytes | bytearray | str, max_depth: int) -> bool:
    """Whether arrays and objects in the JSON ``data`` nest more than ``max_depth`` levels (brackets inside
    strings do not count), in time linear in the size and never recursing.

    Bodies with at most ``max_depth`` opening brackets (nearly all) cost two ``count`` calls. Otherwise the
    strings are removed, the rest reduced to its brackets; a run of more than ``max_depth`` opening brackets
    answers at once, else innermost pairs ``[]`` are removed in passes (at most ``max_depth + 1``): a
    balanced nesting of depth d is empty after d passes. Removing a pair lowers the deepest level by at most
    one, so what is left after k passes, with its own depth r, bounds the original's depth by k + r; unbalanced
    brackets (not JSON: the parser rejects them) are judged by that bound, which is what the parser's recursion
    could reach before it finds the error."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    brackets = _STRING.sub(b"", raw).translate(_AS_BRACKETS, _NOT_BRACKETS)
    too_deep_run = b"[" * (max_depth + 1)
    for passes in range(max_depth + 1):
        if not brackets:
            return False
        if too_deep_run in brackets:  # the shape of the hostile bodies: [[[[... or {"a":{"a":...
            return True
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) == len(brackets):  # unbalanced: only "]]]...[[[" is left
            return passes + len(brackets) - len(brackets.rstrip(b"[")) > max_depth
        brackets = reduced
    return True
