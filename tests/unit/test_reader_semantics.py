"""The generated SQL, run by a real SQL engine, selects exactly what PromQL selects.

sqlite plays Timestream: the table has Timestream's columns (time, measure_name,
"measure_value::double", one VARCHAR column per dimension ever written, NULL where a series lacks
that label) and the reader's SQL runs on it verbatim. The only translation is the local
Timestream's (local_timestream/emulator.py), imported so there is one implementation:

* time is stored as integer milliseconds, so `from_milliseconds(ms)` is the identity;
* `regexp_like(value, pattern)` is Python's `re.search`, with the pattern's `\\z` (Java: end of
  input) spelt `\\Z` as Python spells it; NULL in, NULL out, as in Timestream.

The expected answer is computed from the same data with Prometheus semantics in Python (absent
label = "", regexes fully anchored), for hypothesis-generated data and matchers.
"""

import re
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.liveanalytics.query_client import ColumnsCache
from chalicelib.liveanalytics.reader import read
from chalicelib.prompb import prometheus_remote_pb2 as pb
from local_timestream.emulator import regexp_like, register_functions, timestream_time

SETTINGS = Settings(default_database="mydb", default_table="mytable")
DB_LABEL = SETTINGS.database_label
DIMENSIONS = ["job", "inst", 'odd "name"']
UNSTORED = "zone"  # a label no series has: never a column
TIMES = [1000, 2000, 3000]
# Small alphabet with the awkward cases: quotes, a newline, case pairs, RE2's Kelvin-sign fold.
VALUES = ["a", "b", "ab", "A", "k", "\u212a", "\n", "a\n", "a.b", "it's", 'q"', "up", "cpu"]

OPS = {"=": pb.LabelMatcher.EQ, "!=": pb.LabelMatcher.NEQ, "=~": pb.LabelMatcher.RE, "!~": pb.LabelMatcher.NRE}


class SqliteTimestream:
    """A timestream-query client stand-in: runs the SQL on sqlite, answers in Timestream's
    shape (ColumnInfo, Rows of ScalarValue/NullValue), two rows a page with NextToken."""

    def __init__(self, series):
        self.dimensions = sorted({name for labels in series for name in labels if name != "__name__"})
        self.db = sqlite3.connect(":memory:")
        self.db.execute("ATTACH DATABASE ':memory:' AS mydb")
        register_functions(self.db)
        columns = "".join(f', "{name.replace(chr(34), chr(34) * 2)}" TEXT' for name in self.dimensions)
        self.db.execute(f'CREATE TABLE mydb.mytable (time INTEGER, measure_name TEXT, "measure_value::double" REAL'
                        f"{columns})")
        for index, labels in enumerate(series):
            for position, ms in enumerate(TIMES):
                row = [ms, labels["__name__"], index + position / 3]
                row += [labels.get(name) for name in self.dimensions]
                self.db.execute(f"INSERT INTO mydb.mytable VALUES ({', '.join('?' * len(row))})", row)
        self.statements = []

    def query(self, QueryString, NextToken=None):  # noqa: N803 (botocore's parameter names)
        self.statements.append(QueryString)
        if QueryString.startswith("DESCRIBE "):
            names = ["Column", "Type", "Column Category"]
            rows = [[name, "varchar", "DIMENSION"] for name in self.dimensions]
            rows += [["measure_name", "varchar", "MEASURE_NAME"], ["time", "timestamp", "TIMESTAMP"],
                     ["measure_value::double", "double", "MEASURE_VALUE"]]
        else:
            cursor = self.db.execute(QueryString)
            names = [column[0] for column in cursor.description]
            rows = [
                [timestream_time(value) if name == "time" else repr(value) if isinstance(value, float) else value
                 for name, value in zip(names, row, strict=True)]
                for row in cursor.fetchall()
            ]
        start = int(NextToken or 0)
        page = {
            "QueryId": "q",
            "ColumnInfo": [{"Name": name, "Type": {"ScalarType": "VARCHAR"}} for name in names],
            "Rows": [{"Data": [{"NullValue": True} if v is None else {"ScalarValue": v} for v in row]}
                     for row in rows[start:start + 2]],
        }
        if start + 2 < len(rows):
            page["NextToken"] = str(start + 2)
        return page


def expected_answer(series, matchers, start, end, echo):
    """PromQL semantics over the data, as {labels: [(time, value)]}."""
    answer = {}
    for index, labels in enumerate(series):
        def value_of(name, labels=labels):
            return labels.get(name) or ""

        selected = True
        for name, op, value in matchers:
            if name == DB_LABEL:
                continue  # chooses the table; its value is echoed on every series
            actual = value_of(name)
            ok = {"=": actual == value, "!=": actual != value,
                  "=~": re.fullmatch(value, actual) is not None,
                  "!~": re.fullmatch(value, actual) is None}[op]
            selected = selected and ok
        samples = [(ms, index + position / 3) for position, ms in enumerate(TIMES) if start <= ms <= end]
        if selected and samples:
            key = tuple(sorted([*((k, v) for k, v in labels.items() if v), *echo]))
            answer[key] = samples
    return answer


# Regexes whose Python meaning equals RE2's (the oracle), built from a small grammar.
_atoms = st.sampled_from(["a", "b", "k", "A", ".", "up", "cpu", "[ab]", "[^a]", r"\n", "'", '"', "()", r"\."])
regexes = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}|{p[1]}"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{1,2}"])).map(lambda p: f"(?:{p[0]}){p[1]}"),
    ),
    max_leaves=5,
)
case_insensitive = st.tuples(st.sampled_from(["", "(?i)"]), regexes).map("".join)

series_strategy = st.lists(
    st.fixed_dictionaries(
        {"__name__": st.sampled_from(["up", "cpu"])}
        | {name: st.one_of(st.none(), st.sampled_from(VALUES)) for name in DIMENSIONS}
    ),
    max_size=6,
).map(lambda items: list({tuple(sorted(s.items(), key=lambda kv: kv[0])): s for s in items}.values()))

label_names = st.sampled_from(["__name__", *DIMENSIONS, UNSTORED])
matcher_strategy = st.one_of(
    st.tuples(label_names, st.sampled_from(["=", "!="]), st.sampled_from(["", *VALUES])),
    st.tuples(label_names, st.sampled_from(["=~", "!~"]), case_insensitive),
)
query_strategy = st.tuples(
    st.lists(matcher_strategy, max_size=4),
    st.sampled_from([0, 999, 1000, 1500, 2000, 3000, 3001]),
    st.sampled_from([0, 999, 1000, 1500, 2000, 3000, 3001]),
    st.booleans(),  # also name the database with its routing label
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=series_strategy, queries=st.lists(query_strategy, min_size=1, max_size=2))
def test_sql_selects_exactly_what_promql_selects(series, queries):
    client = SqliteTimestream(series)
    request = pb.ReadRequest()
    expected = []
    for matchers, start, end, routed in queries:
        if routed:
            matchers = [*matchers, (DB_LABEL, "=", "mydb")]
        query = request.queries.add(start_timestamp_ms=start, end_timestamp_ms=end)
        for name, op, value in matchers:
            query.matchers.add(type=OPS[op], name=name, value=value)
        echo = [(DB_LABEL, "mydb")] if routed else []
        expected.append(expected_answer(series, matchers, start, end, echo))

    response = read(request, SETTINGS, client, ColumnsCache())

    assert len(response.results) == len(queries)
    for result, wanted in zip(response.results, expected, strict=True):
        got = {}
        for timeseries in result.timeseries:
            labels = [(label.name, label.value) for label in timeseries.labels]
            assert labels == sorted(labels)
            samples = [(sample.timestamp, sample.value) for sample in timeseries.samples]
            assert samples == sorted(samples)
            got[tuple(labels)] = samples
        assert got == wanted
        assert list(got) == sorted(got)  # series in label order


def test_the_sqlite_stand_in_reads_escapes_like_timestream():
    # The translation itself: the reader's anchors and \xHH escapes mean what they should.
    assert regexp_like("a'b", r"\A(?:a\x27b)\z") is True
    assert regexp_like("ab\n", r"\A(?:ab)\z") is False
    assert regexp_like(None, r"\A(?:)\z") is None
