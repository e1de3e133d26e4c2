"""Shape checks on parsed JSON bodies that keep hostile input from becoming a 500 later on."""

from __future__ import annotations

from typing import Any

from qbo_sandbox import errors

# No QBO entity nests deeper than about six levels (Line → SalesItemLineDetail → ItemRef → value);
# anything far deeper is garbage, and recursive code further in (copying, validation) must never
# see it: Python's recursion limit would turn it into a 500.
MAX_JSON_DEPTH = 32


def check_json_shape(body: Any) -> None:
    """Refuse (400, 2010) bodies nested deeper than MAX_JSON_DEPTH or holding a lone surrogate.

    json.loads accepts `"\\ud800"` and yields a str that cannot be encoded as UTF-8: stored, it
    would make every later response carrying it fail. Walked iteratively, not recursively."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_JSON_DEPTH:
                raise _nested_too_deep()
            for key, value in node.items():
                if has_surrogate(key):
                    raise _lone_surrogate()
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1))
                elif isinstance(value, str) and has_surrogate(value):
                    raise _lone_surrogate()
        elif isinstance(node, list):
            if depth > MAX_JSON_DEPTH:
                raise _nested_too_deep()
            for value in node:
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1))
                elif isinstance(value, str) and has_surrogate(value):
                    raise _lone_surrogate()
        elif isinstance(node, str) and has_surrogate(node):
            raise _lone_surrogate()


def has_surrogate(text: str) -> bool:
    # Pure-ASCII text (nearly every field) is checked without scanning it character by character.
    return not text.isascii() and any("\ud800" <= ch <= "\udfff" for ch in text)


def _nested_too_deep() -> errors.QBOError:
    return errors.bad_request(f"Request body is nested deeper than {MAX_JSON_DEPTH} levels", "")


def _lone_surrogate() -> errors.QBOError:
    return errors.bad_request(
        "Request body contains an unpaired UTF-16 surrogate escape (e.g. \\ud800), which is not text", ""
    )
