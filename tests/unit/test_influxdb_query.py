"""Matchers -> InfluxQL: the statement's shape, and quoting that no value can break out of,
checked against a scanner written from InfluxQL's specification (strings: `\\\\`, `\\'`, `\\"`,
`\\n` escapes, no raw newline; regexes: `\\/` is `/`, any other backslash passes through with
the character after it, no raw newline)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import BadRequest
from chalicelib.influxdb.query_influxql import build_query, quote_identifier, quote_literal, regex_literal
from chalicelib.matchers import EQ, NEQ, NRE, RE, Matcher

ROUTING = ("prometheusDatabaseLabel", "prometheusTableLabel")
_STRING_ESCAPES = {"n": "\n", "\\": "\\", "'": "'", '"': '"'}


def scan_string(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted string at `start` and the index after it (InfluxQL's ScanString)."""
    quote = text[start]
    out, i = [], start + 1
    while True:
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char in "\n\r\x00":
            raise ValueError("newline, carriage return or NUL in a string (1.6.7 ends the token)")
        if char == "\\":
            out.append(_STRING_ESCAPES[text[i + 1]])  # KeyError: a bad escape
            i += 2
            continue
        out.append(char)
        i += 1


def scan_regex(text: str, start: int) -> tuple[str, int]:
    """The pattern of the regex literal at `start` and the index after it (InfluxQL's
    ScanRegex: `\\/` is `/`; any other backslash is kept and the next character read normally)."""
    assert text[start] == "/"
    out, i = [], start + 1
    while True:
        char = text[i]
        if char == "/":
            return "".join(out), i + 1
        if char in "\n\r\x00":
            raise ValueError("newline, carriage return or NUL in a regex")
        if char == "\\" and text[i + 1] == "/":
            out.append("/")
            i += 2
            continue
        out.append(char)
        i += 1


TEXT = st.text(alphabet=st.sampled_from(list("'\"\\/\n\r\x00 ab=~!;)(*.$^|")) | st.characters(exclude_categories=("Cs",)),
               max_size=12)


@given(TEXT.filter(lambda text: "\r" not in text and "\x00" not in text))
def test_literals_and_identifiers_scan_back_to_the_value_and_end_where_they_end(value):
    for quoted in (quote_literal(value), quote_identifier(value)):
        assert scan_string(quoted + " AND x", 0) == (value, len(quoted))


@pytest.mark.parametrize("value", ["a\rb", "\x00", "x\r\n/\\"])
def test_values_no_string_can_hold_are_compared_with_an_equivalent_regex(value):
    sql = build_query([Matcher(EQ, "__name__", value), Matcher(NEQ, "job", value)], 0, 1, ROUTING)
    assert "\r" not in sql.replace("\\r", "") and "\x00" not in sql
    pattern = scan_regex(sql, sql.index("FROM ") + 5)[0]
    assert re.fullmatch(pattern, value) and not re.fullmatch(pattern, value + "x")
    assert '"job"::tag !~ /' in sql
    with pytest.raises(BadRequest, match="carriage return or NUL"):
        build_query([Matcher(EQ, "a\rb", "x")], 0, 1, ROUTING)


def go_equivalent(pattern: str) -> str:
    """The pattern Go's regexp must receive: `pattern` with escaped backslashes written \\x5c
    and escaped slashes as plain slashes (both mean the same character in RE2)."""
    return re.sub(r"\\(.)", lambda m: {"\\": "\\x5c", "/": "/"}.get(m.group(1), m.group(0)), pattern, flags=re.S)


@given(st.text(alphabet=st.sampled_from(list("\\/abc.*")), max_size=10).filter(
    lambda p: not re.search(r"(?<!\\)(\\\\)*\\$", p) and "\\Q" not in p))
def test_a_regex_literal_hands_go_the_same_pattern_anchored_whatever_slashes_and_backslashes_it_holds(pattern):
    literal = regex_literal(pattern)
    scanned, end = scan_regex(literal + " AND x", 0)
    assert end == len(literal)
    assert scanned == f"^(?:{go_equivalent(pattern)})$"


def test_regex_literals_with_newlines_and_quotes_keep_their_meaning():
    assert scan_regex(regex_literal("a\nb"), 0)[0] == "^(?:a\\nb)$"
    # \Q...\E is rewritten as escaped literals: the same text for Go.
    assert scan_regex(regex_literal(r"\Qa/b.\E"), 0)[0] == r"^(?:a/b\.)$"
    with pytest.raises(BadRequest):
        regex_literal("abc\\")


def test_a_metric_name_picks_the_measurement_and_labels_compare_tags():
    sql = build_query([Matcher(EQ, "__name__", "up"), Matcher(EQ, "job", "api"), Matcher(NEQ, "env", ""),
                       Matcher(RE, "code", "2.."), Matcher(NRE, "path", "/a|/b")], 0, 1500, ROUTING)
    assert sql == (
        'SELECT "value"::field, "histogram"::field, *::tag FROM "up" WHERE '
        "time >= '1970-01-01T00:00:00.000Z' AND time <= '1970-01-01T00:00:01.500Z' AND "
        "\"__name__\"::tag = 'up' AND \"job\"::tag = 'api' AND \"env\"::tag != '' AND "
        "\"code\"::tag =~ /^(?:2..)$/ AND \"path\"::tag !~ /^(?:\\/a|\\/b)$/"
    )


@pytest.mark.parametrize(("matchers", "source"), [
    ([Matcher(RE, "__name__", "up|node_.*")], "FROM /^(?:up|node_.*)$/"),
    ([Matcher(NEQ, "__name__", "up"), Matcher(EQ, "job", "a")], "FROM /.*/"),
    ([Matcher(NRE, "__name__", "go_.*"), Matcher(EQ, "job", "a")], "FROM /.*/"),
    ([Matcher(EQ, "job", "a")], "FROM /.*/"),
    ([Matcher(RE, "__name__", "a.*"), Matcher(EQ, "__name__", "ab")], 'FROM "ab"'),
])
def test_name_matchers_other_than_equality_pick_every_measurement_they_match(matchers, source):
    sql = build_query(matchers, 0, 1, ROUTING)
    assert source in sql
    for matcher in matchers:
        if matcher.name == "__name__":
            assert f'"__name__"::tag {matcher.op}' in sql  # the tag holds the name on every point


def test_routing_label_matchers_are_not_conditions():
    sql = build_query([Matcher(EQ, "__name__", "up"), Matcher(EQ, "prometheusDatabaseLabel", "db"),
                       Matcher(EQ, "prometheusTableLabel", "t")], 0, 1, ROUTING)
    assert "prometheus" not in sql


@pytest.mark.parametrize("matchers", [
    [Matcher(EQ, "__name__", "")],
    [Matcher(EQ, "__name__", "a"), Matcher(EQ, "__name__", "b")],
])
def test_provably_empty_queries_are_not_sent(matchers):
    assert build_query(matchers, 0, 1, ROUTING) is None
    assert build_query([Matcher(EQ, "__name__", "a")], 2, 1, ROUTING) is None


def test_times_are_clamped_to_influxdbs_range():
    sql = build_query([Matcher(EQ, "__name__", "a")], -(2**63), 2**63 - 1, ROUTING)
    assert "time >= '1677-09-21T00:12:43.146Z'" in sql and "time <= '2262-04-11T23:47:16.854Z'" in sql


@given(name=TEXT.filter(lambda text: "\r" not in text and "\x00" not in text),
       value=TEXT.filter(lambda text: "\r" not in text and "\x00" not in text), op=st.sampled_from([EQ, NEQ]))
def test_no_matcher_value_changes_the_statements_structure(name, value, op):
    sql = build_query([Matcher(EQ, "__name__", "m"), Matcher(op, name or "l", value)], 0, 1, ROUTING)
    rest = sql.split("time <= '1970-01-01T00:00:00.001Z' AND ", 1)[1]
    # Exactly: "__name__"::tag = 'm' AND <identifier>::tag <op> <literal>, and nothing after it.
    identifier, end = scan_string(rest, 0)
    assert (identifier, rest[end:end + 14]) == ("__name__", "::tag = 'm' AN")
    rest = rest[end + len("::tag = 'm' AND "):]
    identifier, end = scan_string(rest, 0)
    assert identifier == (name or "l") and rest[end:].startswith(f"::tag {op} ")
    literal, end = scan_string(rest, end + len(f"::tag {op} "))
    assert (literal, rest[end:]) == (value, "")
