"""Unit tests of chalicelib.destinations: routing labels -> Destination, on write and on read."""

from dataclasses import replace

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.destinations import Destination, ReadTarget, is_valid_destination, route, select_destination
from chalicelib.errors import BadRequest
from chalicelib.matchers import EQ, NEQ, NRE, RE, Matcher

SETTINGS = Settings()
WITH_DEFAULTS = replace(SETTINGS, default_database="db", default_table="tbl")
READ_DEFAULTS = replace(SETTINGS, default_database="mydb", default_table="mytable")
DB_LABEL = SETTINGS.database_label
TABLE_LABEL = SETTINGS.table_label

# ------------------------------------------------------------------------------------------
# Write: labels -> destination, routing labels removed


def test_routing_labels_choose_the_destination_and_are_removed():
    labels = [("__name__", "up"), ("prometheusDatabaseLabel", "prod"), ("prometheusTableLabel", "nodes"),
              ("job", "node")]
    assert route(labels, SETTINGS) == (("prod", "nodes"), [("__name__", "up"), ("job", "node")])


def test_label_names_are_configurable():
    settings = replace(SETTINGS, database_label="db", table_label="tbl")
    labels = [("__name__", "up"), ("db", "prod"), ("tbl", "nodes"), ("prometheusDatabaseLabel", "x")]
    destination, kept = route(labels, settings)
    assert destination == ("prod", "nodes")
    assert kept == [("__name__", "up"), ("prometheusDatabaseLabel", "x")]


def test_series_without_routing_labels_use_the_defaults():
    assert route([("__name__", "up")], WITH_DEFAULTS) == (("db", "tbl"), [("__name__", "up")])


def test_each_routing_label_falls_back_to_its_own_default():
    destination, _ = route([("__name__", "up"), ("prometheusTableLabel", "other")], WITH_DEFAULTS)
    assert destination == ("db", "other")


def test_empty_routing_label_counts_as_absent():
    destination, kept = route([("prometheusDatabaseLabel", ""), ("__name__", "up")], WITH_DEFAULTS)
    assert destination == ("db", "tbl")
    assert kept == [("__name__", "up")]


def test_no_destination_without_labels_or_defaults():
    assert route([("__name__", "up"), ("prometheusDatabaseLabel", "db")], SETTINGS)[0] is None


# The configured routing label names must occur, or "never stored" would go untested: arbitrary
# short text almost never spells a 20-character label name.
ROUTING = [SETTINGS.database_label, SETTINGS.table_label]
label_names = st.one_of(st.sampled_from(ROUTING), st.text(min_size=1, max_size=12))


@settings(deadline=None)
@given(st.lists(st.tuples(label_names, st.text(max_size=12)), max_size=12))
def test_routing_never_stores_routing_labels_and_keeps_the_rest_in_order(labels):
    destination, kept = route(labels, WITH_DEFAULTS)
    routing = {SETTINGS.database_label, SETTINGS.table_label}
    assert kept == [(name, value) for name, value in labels if name not in routing]
    # The last value of each routing label chooses, an empty one counting as absent.
    databases = [value for name, value in labels if name == SETTINGS.database_label]
    tables = [value for name, value in labels if name == SETTINGS.table_label]
    assert destination == Destination((databases or [""])[-1] or "db", (tables or [""])[-1] or "tbl")


def test_the_generated_label_names_include_the_routing_labels():
    for name in ROUTING:
        assert find(label_names, lambda generated, name=name: generated == name, settings=settings(deadline=None)) == name


def test_route_gives_a_destination_with_named_fields_that_is_still_a_pair():
    destination, _ = route([("__name__", "up"), ("prometheusTableLabel", "nodes")], WITH_DEFAULTS)
    assert isinstance(destination, Destination)
    assert (destination.database, destination.table) == ("db", "nodes")
    database, table = destination
    assert (database, table) == (destination[0], destination[1]) == ("db", "nodes")
    # The writer keys its batches by destination: equal to, and hashed like, the plain pair.
    batches = {destination: 1}
    assert batches[("db", "nodes")] == 1 and batches[Destination("db", "nodes")] == 1


def test_destination_names_follow_timestream_naming_rules():
    assert is_valid_destination(("prometheus", "node-metrics.v1"))
    assert not is_valid_destination(("db", "table"))  # "db" is shorter than 3 characters
    assert not is_valid_destination(("prometheus", "bad name"))
    assert not is_valid_destination(("prometheus", "x" * 257))


# ------------------------------------------------------------------------------------------
# Read: matchers -> destination, routing labels echoed


def test_defaults_are_used_without_routing_matchers():
    assert select_destination([Matcher(EQ, "__name__", "up")], READ_DEFAULTS) == ReadTarget(Destination("mydb", "mytable"), ())


def test_equality_matchers_choose_and_are_echoed():
    matchers = [Matcher(EQ, DB_LABEL, "prod"), Matcher(EQ, TABLE_LABEL, "nodes")]
    assert select_destination(matchers, SETTINGS) == ReadTarget(
        Destination("prod", "nodes"), ((DB_LABEL, "prod"), (TABLE_LABEL, "nodes"))
    )


def test_each_routing_label_falls_back_on_its_own_default():
    assert select_destination([Matcher(EQ, TABLE_LABEL, "other")], READ_DEFAULTS) == ReadTarget(
        Destination("mydb", "other"), ((TABLE_LABEL, "other"),)
    )


def test_plain_text_regex_chooses_like_equality():
    target = select_destination([Matcher(RE, DB_LABEL, "prod")], READ_DEFAULTS)
    assert target == ReadTarget(Destination("prod", "mytable"), ((DB_LABEL, "prod"),))


def test_missing_destination_names_what_is_missing():
    with pytest.raises(BadRequest, match="no database.*DEFAULT_DATABASE"):
        select_destination([Matcher(EQ, TABLE_LABEL, "t1")], SETTINGS)
    with pytest.raises(BadRequest, match=f'no table.*{TABLE_LABEL}="name".*DEFAULT_TABLE'):
        select_destination([Matcher(EQ, DB_LABEL, "db1")], SETTINGS)


def test_contradicting_routing_matchers_make_the_query_empty():
    assert select_destination([Matcher(EQ, DB_LABEL, "aaa"), Matcher(EQ, DB_LABEL, "bbb")], READ_DEFAULTS) is None
    assert select_destination([Matcher(EQ, DB_LABEL, "aaa"), Matcher(NEQ, DB_LABEL, "aaa")], READ_DEFAULTS) is None
    assert select_destination([Matcher(EQ, DB_LABEL, "aaa"), Matcher(NRE, DB_LABEL, "a+")], READ_DEFAULTS) is None


def test_routing_matchers_that_hold_for_the_chosen_value_are_fine():
    matchers = [Matcher(EQ, DB_LABEL, "prod1"), Matcher(RE, DB_LABEL, "prod.*"), Matcher(NEQ, DB_LABEL, "x")]
    assert select_destination(matchers, READ_DEFAULTS).destination.database == "prod1"
    # Without a choice the series carry no routing label: "" satisfies these.
    assert select_destination([Matcher(NEQ, DB_LABEL, "x"), Matcher(EQ, DB_LABEL, "")], READ_DEFAULTS).destination.database == "mydb"


@pytest.mark.parametrize("matcher", [Matcher(RE, DB_LABEL, "prod.*"), Matcher(NEQ, DB_LABEL, ""),
                                     Matcher(NRE, DB_LABEL, ".*")])
def test_matchers_that_would_need_several_tables_are_refused(matcher):
    with pytest.raises(BadRequest, match="a query reads one database"):
        select_destination([matcher], READ_DEFAULTS)


def test_invalid_destination_names_are_refused():
    with pytest.raises(BadRequest, match="invalid Timestream database or table name"):
        select_destination([Matcher(EQ, DB_LABEL, 'x"; DROP')], READ_DEFAULTS)


def test_the_read_target_holds_a_destination_and_the_echo_apart():
    target = select_destination([Matcher(EQ, TABLE_LABEL, "nodes"), Matcher(EQ, "job", "api")], READ_DEFAULTS)
    assert isinstance(target.destination, Destination)
    database, table = target.destination
    assert (database, table) == ("mydb", "nodes")
    assert target.echo == ((TABLE_LABEL, "nodes"),)


timestream_names = st.from_regex(r"[A-Za-z0-9_.\-]{3,20}", fullmatch=True)
other_labels = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda name: name not in (DB_LABEL, TABLE_LABEL)),
    st.text(min_size=1, max_size=12), max_size=4,
)


@settings(deadline=None)
@given(database=st.none() | timestream_names, table=st.none() | timestream_names, labels=other_labels)
def test_a_series_is_read_from_the_table_it_was_written_to_with_the_labels_it_was_sent_with(
    database, table, labels
):
    sent = dict(labels)
    if database:
        sent[DB_LABEL] = database
    if table:
        sent[TABLE_LABEL] = table
    written_to, stored = route(list(sent.items()), READ_DEFAULTS)
    # Prometheus selects the series by the labels it sent: routing labels included.
    target = select_destination([Matcher(EQ, name, value) for name, value in sent.items()], READ_DEFAULTS)
    assert target.destination == written_to
    assert sorted(stored + list(target.echo)) == sorted(sent.items())
