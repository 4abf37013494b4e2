"""A line-protocol reader written from InfluxDB's specification and InfluxDB 1.x's behaviour
(verified on Debian's 1.6.7), independent of the connector's writer, for round-trip tests.

Rules: a line is `measurement[,tag=value...] field=value[,field=value...] [timestamp]`; a line
starting with `#` is a comment; a newline ends a line. While scanning a measurement, tag key or
tag value, a delimiter right after a backslash is escaped (1.x looks one byte back, it does not
pair backslashes); an unescaped `=` in a tag value is an error. When the element is stored,
`\\,`, `\\ ` and `\\=` are replaced by the delimiter, one kind after the other, and every other
backslash is kept. String field values are double-quoted with `\\"` and `\\\\` escaped.
"""

from __future__ import annotations

import json

_UNESCAPED = ((r"\,", ","), (r"\ ", " "), (r"\=", "="))


class LineError(ValueError):
    pass


def _unescape(raw: str) -> str:
    # As InfluxDB 1.x does it: one replacement after the other.
    for escaped, plain in _UNESCAPED:
        raw = raw.replace(escaped, plain)
    return raw


def _scan(line: str, start: int, stops: str) -> tuple[str, int]:
    """The raw element from `start` up to the first unescaped character of `stops` (or the
    end), and the index of that character."""
    i = start
    while i < len(line) and not (line[i] in stops and line[i - 1] != "\\"):
        i += 1
    return line[start:i], i


def _field_value(text: str) -> float | str | int | bool:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise LineError(f"unterminated string {text!r}")
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text.endswith("i"):
        return int(text[:-1])
    if text in ("t", "T", "true", "True", "TRUE"):
        return True
    if text in ("f", "F", "false", "False", "FALSE"):
        return False
    return float(text)


def _fields(text: str) -> dict[str, float | str | int | bool]:
    fields = {}
    i = 0
    while i < len(text):
        raw_key, i = _scan(text, i, "=")
        if i >= len(text) or not raw_key:
            raise LineError(f"field without =: {text!r}")
        i += 1
        if i < len(text) and text[i] == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                raise LineError(f"unterminated string field: {text!r}")
            value_text, i = text[i:j + 1], j + 1
        else:
            value_text, i = _scan(text, i, ",")
        fields[_unescape(raw_key)] = _field_value(value_text)
        if i < len(text):
            if text[i] != ",":
                raise LineError(f"unexpected {text[i]!r} in fields {text!r}")
            i += 1
    return fields


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float | str | int | bool], int | None] | None:
    """(measurement, tags, fields, timestamp) of one line; None for a comment or blank line."""
    if "\n" in line:
        raise LineError("a newline inside a line")
    if not line.strip() or line.startswith("#"):
        return None
    raw_measurement, i = _scan(line, 0, ", ")
    if not raw_measurement:
        raise LineError(f"empty measurement: {line!r}")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        raw_key, i = _scan(line, i + 1, "=, ")
        if i >= len(line) or line[i] != "=" or not raw_key:
            raise LineError(f"invalid tag format: {line!r}")
        raw_value, i = _scan(line, i + 1, ", ")
        if _scan(raw_value, 0, "=")[1] < len(raw_value) and raw_value[0] != "=":
            raise LineError(f"invalid tag format (= in a tag value): {line!r}")
        if not raw_value or raw_value[0] == "=":
            raise LineError(f"empty tag value: {line!r}")
        tags[_unescape(raw_key)] = _unescape(raw_value)
    if i >= len(line) or line[i] != " ":
        raise LineError(f"missing fields: {line!r}")
    # The field set: up to the first space outside a quoted string.
    j = i + 1
    while j < len(line) and line[j] != " ":
        if line[j] == '"':
            j += 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
        j += 1
    fields = _fields(line[i + 1:j])
    rest = line[j:].strip()
    return _unescape(raw_measurement), tags, fields, int(rest) if rest else None


def parse_lines(body: str) -> list[tuple[str, dict[str, str], dict[str, float | str | int | bool], int | None]]:
    """Every point of a /write body, in order."""
    return [point for point in (parse_line(line) for line in body.split("\n")) if point is not None]


def labels_of(exemplar_labels: str) -> dict[str, str]:
    return json.loads(exemplar_labels)
