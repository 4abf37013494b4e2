"""Unit tests of chalicelib.reader: quoting, regex translation, destination, SQL, columns cache,
paging, rows -> series, size cap and error mapping."""

import datetime
import re
import sqlite3
from dataclasses import replace

import botocore.session
import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.reader import (
    EQ,
    NEQ,
    NRE,
    RE,
    ColumnsCache,
    Destination,
    Matcher,
    ResponseBudget,
    build_query,
    describe_query,
    fetch_pages,
    map_aws_error,
    parse_describe,
    parse_timestamp_ms,
    quote_identifier,
    quote_literal,
    read,
    select_destination,
    series_from_pages,
)
from chalicelib.regex import compile_regex

SETTINGS = Settings(default_database="mydb", default_table="mytable")
NO_DEFAULTS = Settings()
DB_LABEL = SETTINGS.database_label
TABLE_LABEL = SETTINGS.table_label
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


@given(sql_text)
def test_any_value_round_trips_as_a_literal(value):
    literal = quote_literal(value)
    assert _parse_sql_literal(literal) == value
    # And a real SQL engine with the same quoting rules reads it back unchanged.
    assert sqlite3.connect(":memory:").execute(f"SELECT {literal}").fetchone()[0] == value


@given(sql_text.filter(bool))
def test_any_identifier_names_exactly_one_column(name):
    identifier = quote_identifier(name)
    inner = identifier[1:-1]
    assert identifier[0] == identifier[-1] == '"'
    assert inner.replace('""', "") .count('"') == 0, "an undoubled quote would end the identifier"
    connection = sqlite3.connect(":memory:")
    connection.execute(f"CREATE TABLE t ({identifier} TEXT, other TEXT)")
    assert [row[1] for row in connection.execute("PRAGMA table_info(t)")] == [name, "other"]


# ------------------------------------------------------------------------------------------
# Regex translation


@pytest.mark.parametrize(
    ("pattern", "sql"),
    [
        ("foo", r"\A(?:foo)\z"),
        ("a.*b", r"\A(?:a[^\x0A]*b)\z"),
        ("(?s)a.b", r"\A(?:a(?:[^\x0A]|\x0A)b)\z"),
        ("a|b|", r"\A(?:a|b|)\z"),
        ("x(a|b)+y", r"\A(?:x(?:a|b)+y)\z"),
        (r"\d+\.\w\s", r"\A(?:[0-9]+\x2E[0-9A-Z_a-z][\x09-\x0A\x0C-\x0D\x20])\z"),
        (r"\D", r"\A(?:[^0-9])\z"),
        ("[[:alpha:]_-]", r"\A(?:[\x2DA-Z_a-z])\z"),
        ("[^a-c]", r"\A(?:[^a-c])\z"),
        ("[]a]", r"\A(?:[\x5Da])\z"),
        ("[a-]", r"\A(?:[\x2Da])\z"),
        ("(?i)kS1", "\\A(?:[Kk\u212a][Ss\u017f]1)\\z"),
        ("(?i:a)b", r"\A(?:[Aa]b)\z"),
        ("a(?i)b|c", r"\A(?:a[Bb]|[Cc])\z"),
        (r"\Qa.b\E+", r"\A(?:a\x2Eb+)\z"),
        ("x{2}y{2,}z{2,3}?", r"\A(?:x{2}y{2,}z{2,3})\z"),
        ("a{,2}", r"\A(?:a\x7B\x2C2\x7D)\z"),  # not a repeat in RE2: literal text
        ("^a$", r"\A(?:\Aa\z)\z"),
        (r"\x41\x{1F600}\t", "\\A(?:A\U0001f600\\x09)\\z"),
        ("(?P<name>x)(?<n2>y)(?:z)", r"\A(?:xyz)\z"),
        ("日本", r"\A(?:日本)\z"),
        ("it's", r"\A(?:it\x27s)\z"),
        ("", r"\A(?:)\z"),
    ],
)
def test_regexes_are_rewritten_into_the_portable_subset(pattern, sql):
    assert compile_regex(pattern).sql_pattern == sql


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"\bword", "word boundary"),
        (r"\pL", "Unicode class"),
        (r"[\p{Greek}]", "Unicode class"),
        ("(?m)^a", "flag m"),
        ("(?U)a*", "flag U"),
        ("(?i)é", "non-ASCII"),
        ("(?i)[à-ÿ]", "non-ASCII"),
        (r"(a)\1", "backreference"),
        (r"\0", "octal"),
        ("(?=a)", "lookaround"),
        ("(?<!a)b", "lookaround"),
        ("a**", "nested repetition"),
        ("a{2}{3}", "nested repetition"),
        ("*a", "missing argument"),
        ("{2}", "missing argument"),
        ("a{1001}", "repeat count"),
        ("a{3,2}", "repeat count"),
        ("[z-a]", "range"),
        ("(a", "missing )"),
        ("a)", "unexpected )"),
        ("[a", "missing ]"),
        ("[[:foo:]]", "character class"),
        ("a\\", "trailing backslash"),
        (r"\q", "invalid escape"),
        (r"\x{110000}", "U+10FFFF"),
        (r"\x{D800}", "surrogate"),
        (r"\C", "any byte"),
        ("^*", "repeating"),
        ("(?)", "missing flags"),
        ("(?i-)", "missing flags"),
        ("(?#c)", "invalid group"),
    ],
)
def test_constructs_that_cannot_be_mapped_are_refused_with_a_reason(pattern, reason):
    with pytest.raises(BadRequest, match=re.escape(reason)):
        compile_regex(pattern)


def test_refusal_names_the_pattern_and_says_why():
    with pytest.raises(BadRequest) as caught:
        compile_regex(r"\bx")
    assert r"'\\bx'" in caught.value.message
    assert "Timestream" in caught.value.message


@pytest.mark.parametrize(
    ("pattern", "empty", "literal"),
    [("", True, ""), ("a*", True, None), ("a|", True, None), ("^$", True, None), ("abc", False, "abc"),
     (r"a\.b", False, "a.b"), ("a+", False, None), ("(?i)1", False, "1"), ("(?i)a", False, None)],
)
def test_empty_match_and_literal_detection(pattern, empty, literal):
    regex = compile_regex(pattern)
    assert regex.matches_empty is empty
    assert regex.literal == literal


def test_case_folding_follows_re2_for_kelvin_and_long_s():
    assert compile_regex("(?i)k").matches("\u212a")
    assert compile_regex("(?i)[a-z]+").matches("\u017f\u212a")
    assert not compile_regex("(?i)[^k]").matches("\u212a")
    assert compile_regex(r"(?i)\W").matches("\u212a") is False


def test_dot_and_anchors_behave_as_in_re2():
    # RE2 without (?s): . is anything but \n; $ is the very end (never before a final \n).
    assert compile_regex(".").matches("\r") and compile_regex(".").matches("\u2028")
    assert not compile_regex(".").matches("\n")
    assert not compile_regex("a$").matches("a\n")
    assert not compile_regex("a").matches("ab")  # anchored at both ends, like Prometheus


# RE2 subset whose Python `re` meaning is identical, as an oracle for the translation.
_ALPHABET = ["a", "b", "A", "k", "\u212a", "\n", "-", "."]
_atoms = st.sampled_from(
    ["a", "b", "k", "A", ".", r"\.", "-", "[ab]", "[^a]", "[a-k]", r"\n", r"\x2D", "()"]
)


def _regex_trees(children):
    return st.one_of(
        st.tuples(children, children).map("".join),
        st.tuples(children, children).map(lambda p: f"{p[0]}|{p[1]}"),
        st.tuples(children, st.sampled_from(["*", "+", "?", "{1,2}", "*?", "{2}"])).map(
            lambda p: f"(?:{p[0]}){p[1]}"
        ),
        children.map(lambda c: f"({c})"),
    )


portable_regexes = st.recursive(_atoms, _regex_trees, max_leaves=6)


@settings(max_examples=300)
@given(
    pattern=portable_regexes,
    fold=st.booleans(),
    value=st.lists(st.sampled_from(_ALPHABET), max_size=5).map("".join),
)
def test_translation_matches_exactly_what_re2_matches(pattern, fold, value):
    source = f"(?i){pattern}" if fold else pattern
    expected = re.fullmatch(source, value) is not None  # same as RE2 on this subset
    regex = compile_regex(source)
    assert regex.matches(value) is expected
    # The SQL pattern itself, read by a Java-like engine (only \z is spelt \Z in Python).
    assert (re.search(regex.sql_pattern.replace(r"\z", r"\Z"), value) is not None) is expected
    assert regex.matches_empty is (re.fullmatch(source, "") is not None)


# ------------------------------------------------------------------------------------------
# Destination


def test_defaults_are_used_without_routing_matchers():
    assert select_destination([Matcher(EQ, "__name__", "up")], SETTINGS) == Destination("mydb", "mytable", ())


def test_equality_matchers_choose_and_are_echoed():
    matchers = [Matcher(EQ, DB_LABEL, "prod"), Matcher(EQ, TABLE_LABEL, "nodes")]
    assert select_destination(matchers, NO_DEFAULTS) == Destination(
        "prod", "nodes", ((DB_LABEL, "prod"), (TABLE_LABEL, "nodes"))
    )


def test_each_routing_label_falls_back_on_its_own_default():
    assert select_destination([Matcher(EQ, TABLE_LABEL, "other")], SETTINGS) == Destination(
        "mydb", "other", ((TABLE_LABEL, "other"),)
    )


def test_plain_text_regex_chooses_like_equality():
    destination = select_destination([Matcher(RE, DB_LABEL, "prod")], SETTINGS)
    assert destination == Destination("prod", "mytable", ((DB_LABEL, "prod"),))


def test_missing_destination_names_what_is_missing():
    with pytest.raises(BadRequest, match="no database.*DEFAULT_DATABASE"):
        select_destination([Matcher(EQ, TABLE_LABEL, "t1")], NO_DEFAULTS)
    with pytest.raises(BadRequest, match=f'no table.*{TABLE_LABEL}="name".*DEFAULT_TABLE'):
        select_destination([Matcher(EQ, DB_LABEL, "db1")], NO_DEFAULTS)


def test_contradicting_routing_matchers_make_the_query_empty():
    assert select_destination([Matcher(EQ, DB_LABEL, "aaa"), Matcher(EQ, DB_LABEL, "bbb")], SETTINGS) is None
    assert select_destination([Matcher(EQ, DB_LABEL, "aaa"), Matcher(NEQ, DB_LABEL, "aaa")], SETTINGS) is None
    assert select_destination([Matcher(EQ, DB_LABEL, "aaa"), Matcher(NRE, DB_LABEL, "a+")], SETTINGS) is None


def test_routing_matchers_that_hold_for_the_chosen_value_are_fine():
    matchers = [Matcher(EQ, DB_LABEL, "prod1"), Matcher(RE, DB_LABEL, "prod.*"), Matcher(NEQ, DB_LABEL, "x")]
    assert select_destination(matchers, SETTINGS).database == "prod1"
    # Without a choice the series carry no routing label: "" satisfies these.
    assert select_destination([Matcher(NEQ, DB_LABEL, "x"), Matcher(EQ, DB_LABEL, "")], SETTINGS).database == "mydb"


@pytest.mark.parametrize("matcher", [Matcher(RE, DB_LABEL, "prod.*"), Matcher(NEQ, DB_LABEL, ""),
                                     Matcher(NRE, DB_LABEL, ".*")])
def test_matchers_that_would_need_several_tables_are_refused(matcher):
    with pytest.raises(BadRequest, match="a query reads one database"):
        select_destination([matcher], SETTINGS)


def test_invalid_destination_names_are_refused():
    with pytest.raises(BadRequest, match="invalid Timestream database or table name"):
        select_destination([Matcher(EQ, DB_LABEL, 'x"; DROP')], SETTINGS)


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


@given(name=sql_text, value=sql_text, op=st.sampled_from([EQ, NEQ]))
def test_no_label_name_or_value_changes_the_query_structure(name, value, op):
    assume(name)
    sql = build_query("d", "t", [Matcher(op, name, value)], 0, 1, {name})
    # Parse it back: the predicate is exactly one quoted identifier and one quoted literal.
    where = sql.split(" WHERE ", 1)[1].split(" AND ", 2)[2]
    identifier, literal = quote_identifier(name), quote_literal(value)
    assert where in {
        f"{identifier} = {literal}", f"({identifier} IS NULL OR {identifier} = '')",
        f"({identifier} IS NULL OR {identifier} <> {literal})", f"{identifier} <> ''",
    }


# ------------------------------------------------------------------------------------------
# DESCRIBE and the columns cache


def _page(names, rows, token=None):
    page = {
        "QueryId": "q",
        "ColumnInfo": [{"Name": name, "Type": {"ScalarType": "VARCHAR"}} for name in names],
        "Rows": [
            {"Data": [{"NullValue": True} if value is None else {"ScalarValue": value} for value in row]}
            for row in rows
        ],
    }
    if token:
        page["NextToken"] = token
    return page


def test_describe_query_quotes_names():
    assert describe_query("d b", 'we"ird') == 'DESCRIBE "d b"."we""ird"'


def test_describe_keeps_only_dimensions():
    rows = [["job", "varchar", "DIMENSION"], ["measure_value::double", "double", "MEASURE_VALUE"],
            ["measure_name", "varchar", "MEASURE_NAME"], ["time", "timestamp", "TIMESTAMP"],
            ["instance", "varchar", "DIMENSION"]]
    as_answered = _page(["Column", "Type", "Column Category"], rows[:3])
    as_documented = _page(["Column", "Type", "Timestream attribute type"], rows[3:])
    assert parse_describe([as_answered, as_documented]) == {"job", "instance"}


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_cache_keeps_columns_for_the_ttl():
    clock = FakeClock()
    cache = ColumnsCache(ttl_seconds=60, clock=clock)
    loads = []

    def load():
        loads.append(clock.now)
        return frozenset({"job"})

    assert cache.columns("k", load) == {"job"}
    clock.now += 59
    assert cache.columns("k", load) == {"job"} and cache.get("k") == {"job"}
    clock.now += 1
    assert cache.get("k") is None
    cache.columns("k", load)
    assert loads == [100.0, 160.0]


def test_cache_reloads_early_for_an_unknown_label_but_not_too_often():
    clock = FakeClock()
    cache = ColumnsCache(ttl_seconds=60, refresh_unknown_after_seconds=5, clock=clock)
    versions = iter([frozenset({"job"}), frozenset({"job", "zone"})])
    cache.columns("k", lambda: next(versions))
    clock.now += 4
    assert cache.columns("k", lambda: next(versions), wanted={"zone"}) == {"job"}
    clock.now += 1
    assert cache.columns("k", lambda: next(versions), wanted={"zone"}) == {"job", "zone"}


def test_cache_is_bounded():
    cache = ColumnsCache(max_entries=2, clock=FakeClock())
    for key in "abc":
        cache.put(key, frozenset({key}))
    assert cache.get("a") is None and cache.get("c") == {"c"}


# ------------------------------------------------------------------------------------------
# Paging, rows -> series


def _client():
    return botocore.session.get_session().create_client(
        "timestream-query", region_name="us-east-1", endpoint_url="https://query.invalid",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )


COLUMNS = ["job", "instance", "measure_name", "time", "measure_value::double", "measure_value::bigint"]


def _stamp(ms):
    seconds, millis = divmod(ms, 1000)
    day = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{day}.{millis:03d}000000"


def test_pages_are_followed_to_the_end_and_grouped_into_series():
    client = _client()
    first = _page(COLUMNS, [
        ["api", None, "up", "1970-01-01 00:00:02.000000000", "1.0", None],
        ["api", "b", "up", "1970-01-01 00:00:01.500000000", "0.1", None],
        ["api", None, "up", "1970-01-01 00:00:01.000000000", "2.5", None],
    ], token="t1")
    second = _page(COLUMNS, [
        ["api", "b", "up", "1970-01-01 00:00:01.000000000", "1.7976931348623157E308", None],
        ["api", "b", "up", "1970-01-01 00:00:03.000000000", None, "7"],  # not a double: skipped
    ])
    with Stubber(client) as stub:
        stub.add_response("query", first, {"QueryString": "SELECT 1"})
        stub.add_response("query", second, {"QueryString": "SELECT 1", "NextToken": "t1"})
        series = series_from_pages(fetch_pages(client, "SELECT 1"), echo=((DB_LABEL, "prod"),))
        stub.assert_no_pending_responses()
    assert [[(label.name, label.value) for label in s.labels] for s in series] == [
        [("__name__", "up"), ("instance", "b"), ("job", "api"), (DB_LABEL, "prod")],
        [("__name__", "up"), ("job", "api"), (DB_LABEL, "prod")],
    ]
    assert [(s.timestamp, s.value) for s in series[0].samples] == [(1000, 1.7976931348623157e308), (1500, 0.1)]
    assert [(s.timestamp, s.value) for s in series[1].samples] == [(1000, 2.5), (2000, 1.0)]


def test_empty_dimension_values_are_left_out():
    page = _page(COLUMNS, [["", None, "up", "1970-01-01 00:00:01.000000000", "1", None]])
    [series] = series_from_pages([page])
    assert [(label.name, label.value) for label in series.labels] == [("__name__", "up")]


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1970-01-01 00:00:00.000000000", 0), ("2024-02-29 23:59:59.999999999", 1709251199999),
     ("2001-09-09 01:46:40.123", 1000000000123), ("2001-09-09 01:46:40", 1000000000000)],
)
def test_timestamps_are_read_to_the_millisecond(text, ms):
    assert parse_timestamp_ms(text) == ms


# ------------------------------------------------------------------------------------------
# Size cap


def test_an_answer_over_the_budget_is_refused_with_advice():
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    with pytest.raises(PayloadTooLarge, match="narrow the query"):
        series_from_pages([_page(COLUMNS, rows)], budget=ResponseBudget(500))


def test_the_cap_stops_paging_early():
    client = _client()
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    with Stubber(client) as stub:
        stub.add_response("query", _page(COLUMNS, rows, token="more"), {"QueryString": "SELECT 1"})
        with pytest.raises(PayloadTooLarge):
            series_from_pages(fetch_pages(client, "SELECT 1"), budget=ResponseBudget(500))
        # The second page was never requested.
        stub.assert_no_pending_responses()


def test_read_passes_the_size_limit_through():
    client = _client()
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    request = pb.ReadRequest(queries=[pb.Query(start_timestamp_ms=0, end_timestamp_ms=10**6)])
    with Stubber(client) as stub:
        stub.add_response("query", _page(COLUMNS, rows))
        with pytest.raises(PayloadTooLarge):
            read(request, SETTINGS, client, ColumnsCache(), max_response_bytes=500)


@settings(max_examples=100)
@given(st.lists(
    st.tuples(st.sampled_from(["a", "bb", "ccc", None]), st.sampled_from(["x", "é", None]),
              st.integers(0, 2**42), st.floats(allow_nan=False, allow_infinity=False)),
    max_size=30,
))
def test_the_budget_never_underestimates_the_encoded_size(rows):
    page = _page(["job", "zone", "measure_name", "time", "measure_value::double"], [
        [job, zone, "m", _stamp(ms), repr(value)] for job, zone, ms, value in rows
    ])
    budget = ResponseBudget(10**9)
    budget.charge(6)  # one QueryResult, as read() charges it
    response = pb.ReadResponse()
    response.results.add().timeseries.extend(series_from_pages([page], budget=budget))
    assert budget.used >= response.ByteSize()


# ------------------------------------------------------------------------------------------
# Error mapping


@pytest.mark.parametrize(
    ("code", "status", "message", "error"),
    [
        ("ThrottlingException", 400, "slow down", ServiceUnavailable),
        ("InternalServerException", 500, "oops", ServiceUnavailable),
        ("SomethingNew", 503, "later", ServiceUnavailable),
        ("AccessDeniedException", 400, "no", Forbidden),
        ("UnrecognizedClientException", 400, "who", Forbidden),
        ("InvalidSignatureException", 400, "sig", Forbidden),
        ("ResourceNotFoundException", 400, "gone", NotFound),
        ("ValidationException", 400, "Requested database 'abc' not found for identifier 'abc.t' at line 1:15",
         NotFound),
        ("ValidationException", 400, "line 1:20: mismatched input", BadRequest),
        ("QueryExecutionException", 400, "too much", BadRequest),
    ],
)
def test_aws_errors_map_to_statuses(code, status, message, error):
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("query", service_error_code=code, service_message=message,
                              http_status_code=status)
        with pytest.raises(error) as caught:
            list(fetch_pages(client, "SELECT 1", "db", "tbl"))
    assert "\n" not in caught.value.message
    if error is Forbidden:
        assert message not in caught.value.message  # AWS's text is not echoed for auth failures


@pytest.mark.parametrize("error", [
    ReadTimeoutError(endpoint_url="https://x"), ConnectTimeoutError(endpoint_url="https://x"),
    EndpointConnectionError(endpoint_url="https://x"),
])
def test_timeouts_are_transient(error):
    assert isinstance(map_aws_error(error), ServiceUnavailable)


def test_other_exceptions_are_not_mapped():
    assert map_aws_error(KeyError("bug")) is None


# ------------------------------------------------------------------------------------------
# read()


def _matcher(kind, name, value):
    return pb.LabelMatcher(type=kind, name=name, value=value)


def test_read_answers_each_query_in_order():
    client = _client()
    describe = _page(["Column", "Type", "Column Category"], [["job", "varchar", "DIMENSION"]])
    rows = _page(["job", "measure_name", "time", "measure_value::double"],
                 [["api", "up", "1970-01-01 00:00:01.000000000", "1"]])
    request = pb.ReadRequest(queries=[
        pb.Query(start_timestamp_ms=0, end_timestamp_ms=5000, matchers=[
            _matcher(pb.LabelMatcher.EQ, "__name__", "up"), _matcher(pb.LabelMatcher.EQ, "zone", "x")]),
        pb.Query(start_timestamp_ms=0, end_timestamp_ms=5000, matchers=[
            _matcher(pb.LabelMatcher.EQ, "__name__", "up"), _matcher(pb.LabelMatcher.NEQ, "job", "web"),
            _matcher(pb.LabelMatcher.EQ, TABLE_LABEL, "other")]),
        pb.Query(start_timestamp_ms=0, end_timestamp_ms=5000, matchers=[
            _matcher(pb.LabelMatcher.EQ, "__name__", "up")]),
    ], accepted_response_types=[pb.ReadRequest.SAMPLES])
    with Stubber(client) as stub:
        # Query 1 asks about "zone", unknown to db.tbl: DESCRIBE, then provably empty.
        stub.add_response("query", describe, {"QueryString": 'DESCRIBE "mydb"."mytable"'})
        stub.add_response("query", describe, {"QueryString": 'DESCRIBE "mydb"."other"'})
        stub.add_response("query", rows, {"QueryString": (
            'SELECT * FROM "mydb"."other" WHERE time >= from_milliseconds(0) AND time < from_milliseconds(5001)'
            " AND measure_name = 'up' AND (\"job\" IS NULL OR \"job\" <> 'web')")})
        # Query 3 has no dimension matcher: no DESCRIBE.
        stub.add_response("query", rows, {"QueryString": (
            'SELECT * FROM "mydb"."mytable" WHERE time >= from_milliseconds(0) AND time < from_milliseconds(5001)'
            " AND measure_name = 'up'")})
        response = read(request, SETTINGS, client, ColumnsCache(), cache_scope="AKIDEXAMPLE")
        stub.assert_no_pending_responses()
    assert len(response.results) == 3
    assert list(response.results[0].timeseries) == []
    assert [(label.name, label.value) for label in response.results[1].timeseries[0].labels] == [
        ("__name__", "up"), ("job", "api"), (TABLE_LABEL, "other")]
    assert [(label.name, label.value) for label in response.results[2].timeseries[0].labels] == [
        ("__name__", "up"), ("job", "api")]


def test_read_uses_the_columns_cache_across_requests():
    client = _client()
    describe = _page(["Column", "Type", "Column Category"], [["job", "varchar", "DIMENSION"]])
    empty = _page(["job", "measure_name", "time", "measure_value::double"], [])
    request = pb.ReadRequest(queries=[pb.Query(start_timestamp_ms=0, end_timestamp_ms=1, matchers=[
        _matcher(pb.LabelMatcher.EQ, "job", "api")])])
    cache = ColumnsCache()
    with Stubber(client) as stub:
        stub.add_response("query", describe)
        stub.add_response("query", empty)
        stub.add_response("query", empty)
        read(request, SETTINGS, client, cache)
        read(request, SETTINGS, client, cache)
        stub.assert_no_pending_responses()


def test_read_maps_a_missing_table_from_describe_to_not_found():
    client = _client()
    request = pb.ReadRequest(queries=[pb.Query(matchers=[_matcher(pb.LabelMatcher.EQ, "job", "api")])])
    with Stubber(client) as stub:
        stub.add_client_error("query", service_error_code="ValidationException",
                              service_message="Requested database 'mydb' not found for identifier 'mydb.mytable'")
        with pytest.raises(NotFound, match="mydb.mytable"):
            read(request, SETTINGS, client, ColumnsCache())


def test_read_refuses_streamed_only_requests():
    request = pb.ReadRequest(accepted_response_types=[pb.ReadRequest.STREAMED_XOR_CHUNKS])
    with pytest.raises(BadRequest, match="SAMPLES"):
        read(request, SETTINGS, _client(), ColumnsCache())


def test_read_uses_a_size_setting_when_present():
    client = _client()
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    request = pb.ReadRequest(queries=[pb.Query(start_timestamp_ms=0, end_timestamp_ms=10**6)])

    class WithLimit:
        def __getattr__(self, name):
            return 500 if name == "max_read_response_bytes" else getattr(SETTINGS, name)

    with Stubber(client) as stub:
        stub.add_response("query", _page(COLUMNS, rows))
        with pytest.raises(PayloadTooLarge, match="500 bytes"):
            read(request, WithLimit(), client, ColumnsCache())


def test_unknown_matcher_types_are_refused():
    request = pb.ReadRequest(queries=[pb.Query(matchers=[pb.LabelMatcher(type=7, name="a", value="b")])])
    with pytest.raises(BadRequest, match="matcher type"):
        read(request, replace(SETTINGS), _client(), ColumnsCache())
