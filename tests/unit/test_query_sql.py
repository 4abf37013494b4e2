"""Unit tests of chalicelib.liveanalytics.query_sql: quoting, and matchers -> Timestream SQL."""

import sqlite3

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.errors import BadRequest
from chalicelib.liveanalytics.query_sql import build_query, describe_query, quote_identifier, quote_literal
from chalicelib.matchers import EQ, NEQ, NRE, RE, Matcher

DB_LABEL = Settings().database_label
TABLE_LABEL = Settings().table_label
TIME = "time >= from_milliseconds(1000) AND time < from_milliseconds(2001)"

# Text without NUL or surrogates: everything a protobuf string can carry except NUL.
sql_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


# ------------------------------------------------------------------------------------------
# Quoting


def _parse_sql_literal(sql: str) -> str:
    """Read one standard SQL string literal that must span the whole text."""
    assert sql[0] == "'" and sql[-1] == "'"
    out, i = [], 1
    while i < len(sql) - 1:
        if sql[i] == "'":
            assert sql[i + 1] == "'", "a lone quote would end the literal early"
            i += 2
            out.append("'")
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def test_literals_double_single_quotes():
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("") == "''"
    assert quote_literal("a\\b") == "'a\\b'"  # no backslash escapes in Timestream literals


def test_identifiers_double_double_quotes():
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_identifier("job") == '"job"'


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_nul_and_surrogates_are_refused(bad):
    with pytest.raises(BadRequest):
        quote_literal(bad)
    with pytest.raises(BadRequest):
        quote_identifier(bad)


def test_empty_identifier_is_refused():
    with pytest.raises(BadRequest):
        quote_identifier("")


@settings(deadline=None)
@given(sql_text)
def test_any_value_round_trips_as_a_literal(value):
    literal = quote_literal(value)
    assert _parse_sql_literal(literal) == value
    # And a real SQL engine with the same quoting rules reads it back unchanged.
    assert sqlite3.connect(":memory:").execute(f"SELECT {literal}").fetchone()[0] == value


@settings(deadline=None)
@given(sql_text.filter(bool))
def test_any_identifier_names_exactly_one_column(name):
    identifier = quote_identifier(name)
    inner = identifier[1:-1]
    assert identifier[0] == identifier[-1] == '"'
    assert inner.replace('""', "") .count('"') == 0, "an undoubled quote would end the identifier"
    connection = sqlite3.connect(":memory:")
    # The second column's name cannot clash with any generated one (sqlite compares names
    # case-insensitively), so the table always has exactly these two columns.
    other = "other" if name.lower() != "other" else "another"
    connection.execute(f"CREATE TABLE t ({identifier} TEXT, {other} TEXT)")
    assert [row[1] for row in connection.execute("PRAGMA table_info(t)")] == [name, other]


# ------------------------------------------------------------------------------------------
# SQL


def _where(matchers, dimensions=("job",)):
    sql = build_query("db", "tbl", matchers, 1000, 2000, dimensions, (DB_LABEL, TABLE_LABEL))
    return None if sql is None else sql.split(" WHERE ", 1)[1]


def test_query_shape():
    sql = build_query("db", "tbl", [Matcher(EQ, "__name__", "up"), Matcher(RE, "job", "api|web")],
                      1000, 2000, {"job"})
    assert sql == (
        'SELECT * FROM "db"."tbl" WHERE ' + TIME
        + " AND measure_name = 'up' AND regexp_like(\"job\", '\\A(?:api|web)\\z')"
    )


@pytest.mark.parametrize(
    ("matcher", "predicate"),
    [
        (Matcher(EQ, "job", "a'b"), "\"job\" = 'a''b'"),
        (Matcher(EQ, "job", ""), "(\"job\" IS NULL OR \"job\" = '')"),
        (Matcher(NEQ, "job", "a"), "(\"job\" IS NULL OR \"job\" <> 'a')"),
        (Matcher(NEQ, "job", ""), "\"job\" <> ''"),
        (Matcher(RE, "job", "a+"), "regexp_like(\"job\", '\\A(?:a+)\\z')"),
        (Matcher(RE, "job", "a*"), "(\"job\" IS NULL OR regexp_like(\"job\", '\\A(?:a*)\\z'))"),
        (Matcher(NRE, "job", "a+"), "(\"job\" IS NULL OR NOT regexp_like(\"job\", '\\A(?:a+)\\z'))"),
        (Matcher(NRE, "job", "a*"), "NOT regexp_like(\"job\", '\\A(?:a*)\\z')"),
        (Matcher(RE, "job", "api"), "\"job\" = 'api'"),
        (Matcher(NRE, "job", "api"), "(\"job\" IS NULL OR \"job\" <> 'api')"),
        (Matcher(NEQ, "__name__", "up"), "measure_name <> 'up'"),
        (Matcher(NRE, "__name__", "u.*"), "NOT regexp_like(measure_name, '\\A(?:u[^\\x0A]*)\\z')"),
    ],
)
def test_matcher_predicates(matcher, predicate):
    assert _where([matcher]) == f"{TIME} AND {predicate}"


def test_matchers_on_unknown_labels_are_evaluated_here():
    # "" satisfies these: no predicate at all.
    for matcher in [Matcher(EQ, "zone", ""), Matcher(NEQ, "zone", "a"), Matcher(RE, "zone", "a*"),
                    Matcher(NRE, "zone", "a+")]:
        assert _where([matcher]) == TIME
    # "" fails these: the query is provably empty and never sent.
    for matcher in [Matcher(EQ, "zone", "a"), Matcher(NEQ, "zone", ""), Matcher(RE, "zone", "a+"),
                    Matcher(NRE, "zone", ".*")]:
        assert _where([matcher]) is None


def test_reserved_column_names_are_labels_like_any_other():
    # A label called "time" was never stored (the write path refuses it): compared with "".
    assert _where([Matcher(EQ, "time", "x")]) is None
    assert _where([Matcher(EQ, "measure_name", "")]) == TIME


def test_routing_labels_never_reach_sql():
    assert _where([Matcher(EQ, DB_LABEL, "prod"), Matcher(NEQ, TABLE_LABEL, "x")]) == TIME


def test_identical_predicates_are_sent_once():
    assert _where([Matcher(EQ, "job", "a"), Matcher(EQ, "job", "a")]) == f"{TIME} AND \"job\" = 'a'"


def test_time_bounds_are_inclusive_and_clamped():
    assert build_query("d", "t", [], 5, 5, ()).endswith(
        "time >= from_milliseconds(5) AND time < from_milliseconds(6)"
    )
    assert "time >= from_milliseconds(0) " in build_query("d", "t", [], -10_000, 5, ())
    assert "from_milliseconds(9223372036854)" in build_query("d", "t", [], 0, 2**63 - 1, ())
    assert build_query("d", "t", [], 6, 5, ()) is None
    assert build_query("d", "t", [], -20, -10, ()) is None


def test_values_that_cannot_be_sent_are_refused():
    with pytest.raises(BadRequest, match="NUL"):
        build_query("d", "t", [Matcher(EQ, "job", "a\x00")], 0, 1, {"job"})


@settings(deadline=None)
@given(name=sql_text, value=sql_text, op=st.sampled_from([EQ, NEQ]))
def test_no_label_name_or_value_changes_the_query_structure(name, value, op):
    # __name__ is the measure_name column, not a dimension: its own tests cover it.
    assume(name and name != "__name__")
    sql = build_query("d", "t", [Matcher(op, name, value)], 0, 1, {name})
    # Parse it back: the predicate is exactly one quoted identifier and one quoted literal.
    where = sql.split(" WHERE ", 1)[1].split(" AND ", 2)[2]
    identifier, literal = quote_identifier(name), quote_literal(value)
    assert where in {
        f"{identifier} = {literal}", f"({identifier} IS NULL OR {identifier} = '')",
        f"({identifier} IS NULL OR {identifier} <> {literal})", f"{identifier} <> ''",
    }


def test_describe_query_quotes_names():
    assert describe_query("d b", 'we"ird') == 'DESCRIBE "d b"."we""ird"'
