"""PromQL label matchers -> one InfluxQL SELECT with Prometheus's semantics.

    SELECT "value"::field, "histogram"::field, *::tag FROM <measurements>
    WHERE time >= '<start>' AND time <= '<end>' AND <one condition per matcher>

* Measurements: the metric name is the measurement, so `__name__="up"` reads `FROM "up"`, a
  regex reads `FROM /^(?:re)$/`, and anything else (`!=`, `!~`, no name matcher) `FROM /.*/`.
  Every `__name__` matcher is also a condition on the `__name__` tag, which the layout stores on
  every point, so combinations (`__name__=~"a.*", __name__!="ab"`) hold exactly.
* Labels: `=` and `!=` compare the tag with a string literal, `=~` and `!~` with a regex
  anchored as Prometheus anchors it (`^(?:re)$`). InfluxDB compares a tag a point lacks as ""
  (as PromQL compares an absent label), and runs Go's regexp, the RE2 syntax PromQL's regexes
  are written in: the pattern is passed through, not translated.
* Quoting: identifiers in double quotes, string literals in single quotes, with `\\`, the
  quote and the newline escaped as InfluxQL's scanner reads them; in a regex literal `/` is
  written `\\/` (the scanner's one escape), a literal backslash `\\x5c` (so no backslash is
  taken for the escape of a following `/`) and a newline `\\n` (a literal may not hold one).
  A carriage return or NUL breaks every InfluxQL token and has no escape in strings (verified
  on 1.6.7): a value holding one is compared with an equivalent regex (`\\r`, `\\x00`), and a
  label name holding one cannot be queried (400). No matcher value can change the statement's
  structure.

Statements relied on: SELECT with `::field`/`::tag` casts and the `*::tag` wildcard, FROM a
quoted measurement or a regex, WHERE with `=`, `!=`, `=~`, `!~`, AND and an RFC 3339 time range:
all in InfluxQL as InfluxDB 1.x, 2.x (v1 API) and 3 serve it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

from chalicelib.errors import BadRequest
from chalicelib.influxdb.histograms import HISTOGRAM, VALUE
from chalicelib.matchers import EQ, METRIC_NAME_LABEL, NEQ, NRE, RE, Matcher

# InfluxDB's time range (nanoseconds in an int64), in milliseconds.
MIN_TIME_MS = -9_223_372_036_854
MAX_TIME_MS = 9_223_372_036_854
_IDENTIFIER_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_LITERAL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})
# What no InfluxQL string or identifier can hold: the scanner ends every token at them.
_UNQUOTABLE = re.compile("[\r\x00]")
_REGEX_META = frozenset("\\.+*?()|[]{}^$")


def quote_identifier(name: str) -> str:
    if _UNQUOTABLE.search(name):
        raise BadRequest(
            f"label name {name!r}: InfluxQL cannot name a tag holding a carriage return or NUL"
        )
    return '"' + name.translate(_IDENTIFIER_ESCAPES) + '"'


def quote_literal(value: str) -> str:
    return "'" + value.translate(_LITERAL_ESCAPES) + "'"


def literal_pattern(text: str) -> str:
    """An RE2 pattern matching exactly `text`."""
    return "".join("\\" + char if char in _REGEX_META else _quote_meta(char) for char in text)


def _quote_meta(char: str) -> str:
    """One character of a `\\Q...\\E` quote, as RE2 outside a quote matches it literally."""
    if char.isalnum() or char == "_" or ord(char) > 0x7F:
        return char
    if char == "\n":
        return "\\n"
    # ASCII punctuation escaped; ASCII controls and space by code (all below 0x80 here).
    return "\\" + char if char.isprintable() and char != " " else f"\\x{ord(char):02x}"


def _regex_body(pattern: str) -> str:
    """`pattern` (RE2) written so that InfluxQL's regex scanner hands Go's regexp exactly the
    same pattern, whatever it holds."""
    out: list[str] = []
    i, size = 0, len(pattern)
    while i < size:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= size:
                raise BadRequest(f"regular expression {pattern!r}: trailing backslash")
            escaped = pattern[i + 1]
            if escaped == "Q":
                # \Q...\E: literal text, rewritten as escaped literals so the rules below apply.
                end = pattern.find("\\E", i + 2)
                quoted = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append(_regex_body("".join(_quote_meta(c) for c in quoted)))
                i = size if end < 0 else end + 2
                continue
            if escaped == "\\":
                out.append("\\x5c")
            elif escaped == "/":
                out.append("\\/")
            elif escaped == "\n":
                raise BadRequest(f"regular expression {pattern!r}: invalid escape of a newline")
            else:
                out.append(char + escaped)
            i += 2
            continue
        if char == "/":
            out.append("\\/")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\x00":
            out.append("\\x00")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def regex_literal(pattern: str) -> str:
    """A PromQL regex as an InfluxQL regex literal, fully anchored as Prometheus anchors it."""
    return f"/^(?:{_regex_body(pattern)})$/"


def _time_literal(ms: int) -> str:
    ms = min(max(ms, MIN_TIME_MS), MAX_TIME_MS)
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=ms)
    return "'" + moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z'"


def _condition(matcher: Matcher) -> str:
    tag = quote_identifier(matcher.name) + "::tag"
    if matcher.op in (EQ, NEQ):
        if _UNQUOTABLE.search(matcher.value):
            # The same comparison as a regex, which can spell these characters as escapes.
            op = RE if matcher.op == EQ else NRE
            return f"{tag} {op} {regex_literal(literal_pattern(matcher.value))}"
        return f"{tag} {matcher.op} {quote_literal(matcher.value)}"
    return f"{tag} {matcher.op} {regex_literal(matcher.value)}"


def _measurements(name_matchers: Sequence[Matcher]) -> str:
    for matcher in name_matchers:
        if matcher.op == EQ:
            if _UNQUOTABLE.search(matcher.value):
                return regex_literal(literal_pattern(matcher.value))
            return quote_identifier(matcher.value)
    for matcher in name_matchers:
        if matcher.op == RE:
            return regex_literal(matcher.value)
    return "/.*/"


def build_query(
    matchers: Sequence[Matcher], start_ms: int, end_ms: int, routing_labels: Iterable[str]
) -> str | None:
    """The SELECT answering one remote-read query, or None when it provably selects nothing
    (then InfluxDB is not asked). Matchers on the routing labels are the destination's
    (destinations.select_destination), not conditions."""
    if start_ms > end_ms:
        return None
    routing = set(routing_labels)
    kept = [m for m in matchers if m.name not in routing]
    name_matchers = [m for m in kept if m.name == METRIC_NAME_LABEL]
    if any(m.op == EQ and not m.value for m in name_matchers):
        return None  # every stored series has a name
    if len({m.value for m in name_matchers if m.op == EQ}) > 1:
        return None
    conditions = [f"time >= {_time_literal(start_ms)}", f"time <= {_time_literal(end_ms)}"]
    conditions.extend(_condition(m) for m in kept)
    fields = f"{quote_identifier(VALUE)}::field, {quote_identifier(HISTOGRAM)}::field, *::tag"
    return f"SELECT {fields} FROM {_measurements(name_matchers)} WHERE {' AND '.join(conditions)}"
