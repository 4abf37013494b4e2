"""The syntax of PromQL regexes (RE2), parsed into a small tree that regex.py renders.

The tree holds code point sets, anchors, concatenations, alternations and repetitions; captures
and laziness do not change whether a whole string matches, so the parser drops them. Whatever
RE2 accepts that this tree cannot represent with certainty is refused with BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import BadRequest

MAX_CODE_POINT = 0x10FFFF
_MAX_REPEAT = 1000  # RE2's limit: larger counts are errors in Prometheus too.

Ranges = tuple[tuple[int, int], ...]

_NEWLINE: Ranges = ((0x0A, 0x0A),)
ANY: Ranges = ((0, MAX_CODE_POINT),)
_ANY_BUT_NEWLINE: Ranges = ((0, 0x09), (0x0B, MAX_CODE_POINT))
# RE2's Perl and POSIX classes are ASCII-only; Java's \s also has \x0B, so none are passed on.
_PERL_CLASSES: dict[str, Ranges] = {
    "d": ((0x30, 0x39),),
    "s": ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)),
    "w": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
}
_POSIX_CLASSES: dict[str, Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
# Case folding outside ASCII letter pairs that RE2 applies to ASCII letters.
_KELVIN_SIGN, _LONG_S = 0x212A, 0x017F
# Folding non-ASCII ranges means checking every code point; past this size refuse instead.
_MAX_FOLDED_NON_ASCII = 0x10000


@dataclass(frozen=True)
class CharSet:
    """One character from a set of code points (a literal is a set of one)."""

    ranges: Ranges


@dataclass(frozen=True)
class Anchor:
    end: bool


@dataclass(frozen=True)
class Concat:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Alternate:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Repeat:
    item: Any
    low: int
    high: int | None


def _normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def complement(ranges: Ranges) -> Ranges:
    result = []
    next_low = 0
    for low, high in _normalize(ranges):
        if low > next_low:
            result.append((next_low, low - 1))
        next_low = high + 1
    if next_low <= MAX_CODE_POINT:
        result.append((next_low, MAX_CODE_POINT))
    return tuple(result)


def _is_cased(char: str) -> bool:
    return char.lower() != char or char.upper() != char or char.casefold() != char


def _concat(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else Concat(tuple(items))


def _alternate(branches: list[Any]) -> Any:
    return branches[0] if len(branches) == 1 else Alternate(tuple(branches))


class _Parser:
    """Recursive-descent parser for the RE2 syntax PromQL accepts, refusing what it cannot map."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def error(self, what: str) -> BadRequest:
        return BadRequest(f"regular expression {self.pattern!r}: {what}")

    def unsupported(self, what: str) -> BadRequest:
        return BadRequest(
            f"regular expression {self.pattern!r}: {what} is not supported, because Timestream's "
            "regex engine cannot be relied on to match it as Prometheus (RE2) does"
        )

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.pattern[index] if index < len(self.pattern) else ""

    def parse(self) -> Any:
        node = self.alternation(fold=False, dotall=False)
        if self.pos < len(self.pattern):
            raise self.error("unexpected )")
        return node

    def alternation(self, fold: bool, dotall: bool) -> Any:
        # Like RE2, a flag group such as (?i) applies to the rest of the enclosing group,
        # alternatives included: fold/dotall are this frame's state.
        branches: list[Any] = []
        items: list[Any] = []
        while self.pos < len(self.pattern):
            char = self.peek()
            if char == "|":
                branches.append(_concat(items))
                items = []
                self.pos += 1
                continue
            if char == ")":
                break
            if char == "(":
                flags = self.flag_group(fold, dotall)
                if flags is not None:
                    fold, dotall = flags
                    continue
                atoms = [self.group(fold, dotall)]
            elif char == "[":
                atoms = [self.bracket(fold)]
            elif char == ".":
                self.pos += 1
                atoms = [CharSet(ANY if dotall else _ANY_BUT_NEWLINE)]
            elif char in "^$":
                self.pos += 1
                atoms = [Anchor(end=char == "$")]
            elif char == "\\":
                atoms = self.escape(fold)
            elif char in "*+?" or (char == "{" and self.repeat_ahead() is not None):
                raise self.error(f"missing argument to repetition operator {char}")
            else:
                self.pos += 1
                atoms = [self.literal(ord(char), fold)]
            if atoms:
                atoms[-1] = self.quantified(atoms[-1])
            items.extend(atoms)
        branches.append(_concat(items))
        return _alternate(branches)

    def flag_group(self, fold: bool, dotall: bool) -> tuple[bool, bool] | None:
        """Consume `(?flags)` and return the new flags; None (consuming nothing) otherwise."""
        match = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?\)").match(self.pattern, self.pos)
        if match is None:
            return None
        fold, dotall = self.apply_flags(match.group(1), match.group(2), fold, dotall)
        self.pos = match.end()
        return fold, dotall

    def apply_flags(self, on: str, off: str | None, fold: bool, dotall: bool) -> tuple[bool, bool]:
        if not on and not off:
            raise self.error("missing flags in (?...)")
        if off == "":
            raise self.error("missing flags after - in (?...)")
        for letters, value in ((on, True), (off or "", False)):
            for letter in letters:
                if letter == "i":
                    fold = value
                elif letter == "s":
                    dotall = value
                elif letter in "mU":
                    raise self.unsupported(f"the flag {letter}")
                else:
                    raise self.error(f"unknown flag {letter}")
        return fold, dotall

    def group(self, fold: bool, dotall: bool) -> Any:
        start = self.pos
        self.pos += 1  # (
        if self.peek() == "?":
            named = re.compile(r"\?P?<([A-Za-z0-9_]+)>").match(self.pattern, self.pos)
            flags = re.compile(r"\?([a-zA-Z]*)(?:-([a-zA-Z]*))?:").match(self.pattern, self.pos)
            if named:
                self.pos = named.end()
            elif flags:
                if flags.group(1) or flags.group(2) is not None:  # (?flags:re), not just (?:re)
                    fold, dotall = self.apply_flags(flags.group(1), flags.group(2), fold, dotall)
                self.pos = flags.end()
            elif self.pattern.startswith(("?=", "?!", "?<=", "?<!"), self.pos):
                raise self.error("lookaround assertions are not RE2 syntax")
            else:
                raise self.error(f"invalid group syntax at {self.pattern[start:start + 4]!r}")
        node = self.alternation(fold, dotall)
        if self.peek() != ")":
            raise self.error("missing )")
        self.pos += 1
        return node

    def repeat_ahead(self) -> tuple[int, int | None, int] | None:
        """(low, high, end) if a `{n}`, `{n,}` or `{n,m}` starts here; RE2 reads others literally."""
        match = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(self.pattern, self.pos)
        if match is None:
            return None
        low = int(match.group(1))
        high: int | None = low
        if match.group(2):
            high = int(match.group(3)) if match.group(3) else None
        return low, high, match.end()

    def quantified(self, atom: Any) -> Any:
        char = self.peek()
        if char in ("*", "+", "?"):
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
            self.pos += 1
        elif char == "{" and (repeat := self.repeat_ahead()) is not None:
            low, high, self.pos = repeat
            if low > _MAX_REPEAT or (high is not None and high > _MAX_REPEAT):
                raise self.error(f"repeat count over {_MAX_REPEAT}")
            if high is not None and high < low:
                raise self.error("invalid repeat count")
        else:
            return atom
        if isinstance(atom, Anchor):
            raise self.unsupported("repeating ^ or $")
        if self.peek() == "?":  # lazy: same set of matching strings
            self.pos += 1
        if self.peek() in ("*", "+", "?") or (self.peek() == "{" and self.repeat_ahead() is not None):
            raise self.error("invalid nested repetition operator")
        return Repeat(atom, low, high)

    def literal(self, code_point: int, fold: bool) -> CharSet:
        ranges: Ranges = ((code_point, code_point),)
        return CharSet(self.fold(ranges) if fold else ranges)

    def fold(self, ranges: Ranges) -> Ranges:
        """Close `ranges` under RE2's case folding; refuse when non-ASCII letters are involved."""
        result = list(ranges)
        for low, high in ranges:
            if high >= 0x80:
                start = max(low, 0x80)
                if high - start >= _MAX_FOLDED_NON_ASCII or any(
                    _is_cased(chr(cp)) for cp in range(start, high + 1) if not 0xD800 <= cp <= 0xDFFF
                ):
                    raise self.unsupported("case-insensitive matching of non-ASCII letters")
            for first, last in ((0x41, 0x5A), (0x61, 0x7A)):
                a, b = max(low, first), min(high, last)
                if a <= b:
                    result.append((a ^ 0x20, b ^ 0x20))
            # RE2 folds k with U+212A KELVIN SIGN and s with U+017F LONG S.
            if low <= 0x4B <= high or low <= 0x6B <= high:
                result.append((_KELVIN_SIGN, _KELVIN_SIGN))
            if low <= 0x53 <= high or low <= 0x73 <= high:
                result.append((_LONG_S, _LONG_S))
        return _normalize(result)

    def escape(self, fold: bool) -> list[Any]:
        """Atoms for an escape outside brackets (more than one for \\Q...\\E)."""
        kind = self.peek(1)
        if kind == "":
            raise self.error("trailing backslash")
        if kind.lower() in _PERL_CLASSES:
            self.pos += 2
            return [CharSet(self.perl_class(kind, fold))]
        if kind in "Az":
            self.pos += 2
            return [Anchor(end=kind == "z")]
        if kind == "Q":
            end = self.pattern.find("\\E", self.pos + 2)
            text = self.pattern[self.pos + 2:] if end < 0 else self.pattern[self.pos + 2:end]
            self.pos = len(self.pattern) if end < 0 else end + 2
            return [self.literal(ord(char), fold) for char in text]
        if kind in "pP":
            raise self.unsupported("a Unicode class (\\p, \\P)")
        if kind in "bB":
            raise self.unsupported("a word boundary (\\b, \\B)")
        if kind == "C":
            raise self.unsupported("\\C (any byte)")
        return [self.literal(self.escaped_char(), fold)]

    def perl_class(self, kind: str, fold: bool) -> Ranges:
        ranges = _PERL_CLASSES[kind.lower()]
        ranges = self.fold(ranges) if fold else ranges
        return complement(ranges) if kind.isupper() else ranges

    def escaped_char(self) -> int:
        """The code point of a single-character escape at self.pos (a backslash)."""
        kind = self.peek(1)
        if kind == "x":
            braced = re.compile(r"\\x\{([0-9A-Fa-f]{1,8})\}").match(self.pattern, self.pos)
            short = re.compile(r"\\x([0-9A-Fa-f]{2})").match(self.pattern, self.pos)
            match = braced or short
            if match is None:
                raise self.error("invalid \\x escape")
            value = int(match.group(1), 16)
            if value > MAX_CODE_POINT:
                raise self.error("\\x escape beyond U+10FFFF")
            if 0xD800 <= value <= 0xDFFF:
                raise self.unsupported("a surrogate code point")
            self.pos = match.end()
            return value
        if kind in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[kind]
        if kind.isdigit():
            raise self.unsupported("an octal escape or backreference")
        if kind and ord(kind) < 0x80 and not kind.isalnum():
            self.pos += 2
            return ord(kind)
        raise self.error(f"invalid escape \\{kind}")

    def bracket(self, fold: bool) -> CharSet:
        """A bracketed class `[...]`, with RE2's rules for ], - and [:name:]."""
        self.pos += 1
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            char = self.peek()
            if char == "":
                raise self.error("missing ]")
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            if self.pattern.startswith("[:", self.pos):
                ranges.extend(self.posix_class(fold))
                continue
            if char == "\\" and self.peek(1).lower() in _PERL_CLASSES:
                ranges.extend(self.perl_class(self.peek(1), fold))
                self.pos += 2
                continue
            if char == "\\" and self.peek(1) in ("p", "P"):
                raise self.unsupported("a Unicode class (\\p, \\P)")
            low = self.class_char()
            high = low
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.class_char()
                if high < low:
                    raise self.error("invalid character class range")
            piece: Ranges = ((low, high),)
            ranges.extend(self.fold(piece) if fold else piece)
        result = _normalize(ranges)
        if negate:
            result = complement(result)
        if not result:
            raise self.unsupported("a character class that matches nothing")
        return CharSet(result)

    def posix_class(self, fold: bool) -> Ranges:
        end = self.pattern.find(":]", self.pos + 2)
        name = self.pattern[self.pos + 2:end] if end >= 0 else ""
        negated = name.startswith("^")
        ranges = _POSIX_CLASSES.get(name.lstrip("^")) if end >= 0 else None
        if ranges is None:
            raise self.error("invalid character class")
        self.pos = end + 2
        ranges = self.fold(ranges) if fold else ranges
        return complement(ranges) if negated else ranges

    def class_char(self) -> int:
        char = self.peek()
        if char == "\\":
            return self.escaped_char()
        self.pos += 1
        return ord(char)


def parse(pattern: str) -> Any:
    """The syntax tree of a PromQL (RE2) regex; BadRequest for what cannot be mapped."""
    return _Parser(pattern).parse()
