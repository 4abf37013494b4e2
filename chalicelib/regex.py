"""PromQL regexes (RE2 syntax) -> one anchored pattern that Timestream's engine runs identically.

Prometheus anchors every label-matcher regex (`^(?:re)$`) and evaluates it with RE2. Timestream's
`regexp_like` documents java.util.regex syntax, and other engines (Joni, RE2J) are plausible
behind it. A pattern is parsed (regex_syntax.py) into a tree of code point sets, anchors,
concatenations, alternations and repetitions, and rendered here using only constructs that read
the same in all of them. Anything that cannot be rendered with certainty is refused with BadRequest, never
translated into something that could answer differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chalicelib.regex_syntax import (
    ANY,
    MAX_CODE_POINT,
    Alternate,
    Anchor,
    CharSet,
    Concat,
    Ranges,
    complement,
    parse,
)


def _render_char(code_point: int) -> str:
    # ASCII letters, digits and _ mean themselves everywhere; every other ASCII character is
    # written as \xHH, which all engines read as that character, inside or outside brackets.
    # Non-ASCII characters are never special in any of them.
    char = chr(code_point)
    if code_point < 0x80:
        return char if char.isalnum() or char == "_" else f"\\x{code_point:02X}"
    return char


def _render_members(ranges: Ranges) -> str:
    return "".join(
        _render_char(low) if low == high else f"{_render_char(low)}-{_render_char(high)}"
        for low, high in ranges
    )


def _render_set(ranges: Ranges) -> str:
    if ranges == ANY:
        return r"(?:[^\x0A]|\x0A)"
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _render_char(ranges[0][0])
    if ranges[-1][1] == MAX_CODE_POINT:
        # A negated class keeps the top of the code space out of the pattern text.
        return "[^" + _render_members(complement(ranges)) + "]"
    return "[" + _render_members(ranges) + "]"


def _render(node: Any, end_anchor: str) -> str:
    if isinstance(node, CharSet):
        return _render_set(node.ranges)
    if isinstance(node, Anchor):
        return end_anchor if node.end else r"\A"
    if isinstance(node, Concat):
        return "".join(
            f"(?:{_render(item, end_anchor)})" if isinstance(item, Alternate) else _render(item, end_anchor)
            for item in node.items
        )
    if isinstance(node, Alternate):
        return "|".join(_render(item, end_anchor) for item in node.items)
    inner = _render(node.item, end_anchor)
    if not isinstance(node.item, (CharSet, Anchor)):
        inner = f"(?:{inner})"
    if (node.low, node.high) == (0, None):
        return inner + "*"
    if (node.low, node.high) == (1, None):
        return inner + "+"
    if (node.low, node.high) == (0, 1):
        return inner + "?"
    if node.high is None:
        return f"{inner}{{{node.low},}}"
    if node.high == node.low:
        return f"{inner}{{{node.low}}}"
    return f"{inner}{{{node.low},{node.high}}}"


def _matches_empty(node: Any) -> bool:
    # Against "", every anchor holds and no character can be consumed.
    if isinstance(node, CharSet):
        return False
    if isinstance(node, Anchor):
        return True
    if isinstance(node, Concat):
        return all(_matches_empty(item) for item in node.items)
    if isinstance(node, Alternate):
        return any(_matches_empty(item) for item in node.items)
    return node.low == 0 or _matches_empty(node.item)


def _literal_text(node: Any) -> str | None:
    items = node.items if isinstance(node, Concat) else (node,)
    chars = []
    for item in items:
        if not (isinstance(item, CharSet) and len(item.ranges) == 1):
            return None
        if item.ranges[0][0] != item.ranges[0][1]:
            return None
        chars.append(chr(item.ranges[0][0]))
    return "".join(chars)


@dataclass(frozen=True)
class Regex:
    """A PromQL regex, checked and translated.

    `sql_pattern` is the fully anchored pattern for Timestream's `regexp_like`; `matches_empty`
    says whether "" (an absent label) matches; `literal` is the one string matched when the regex
    is plain text (so `=~` can become `=`), else None; `matches()` evaluates it here, identically.
    """

    source: str
    sql_pattern: str
    matches_empty: bool
    literal: str | None
    python: re.Pattern[str]

    def matches(self, value: str) -> bool:
        return self.python.search(value) is not None


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Regex:
    """Parse a PromQL (RE2) regex, anchored like Prometheus. BadRequest if it cannot be mapped."""
    tree = parse(pattern)
    body_java = _render(tree, r"\z")
    # Python's \Z is Java's \z (end of input, not before a final newline); nothing else differs
    # in the rendered subset, so this compiled form is the one used for evaluation here.
    body_python = _render(tree, r"\Z")
    return Regex(
        source=pattern,
        sql_pattern=rf"\A(?:{body_java})\z",
        matches_empty=_matches_empty(tree),
        literal=_literal_text(tree),
        python=re.compile(rf"\A(?:{body_python})\Z"),
    )


