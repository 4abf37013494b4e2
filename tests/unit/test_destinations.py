from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.destinations import is_valid_destination, route

SETTINGS = Settings()
WITH_DEFAULTS = replace(SETTINGS, default_database="db", default_table="tbl")


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


label_names = st.text(min_size=1, max_size=12)


@given(st.lists(st.tuples(label_names, st.text(max_size=12)), max_size=12))
def test_routing_never_stores_routing_labels_and_keeps_the_rest_in_order(labels):
    _, kept = route(labels, WITH_DEFAULTS)
    routing = {SETTINGS.database_label, SETTINGS.table_label}
    assert kept == [(name, value) for name, value in labels if name not in routing]


def test_destination_names_follow_timestream_naming_rules():
    assert is_valid_destination(("prometheus", "node-metrics.v1"))
    assert not is_valid_destination(("db", "table"))  # "db" is shorter than 3 characters
    assert not is_valid_destination(("prometheus", "bad name"))
    assert not is_valid_destination(("prometheus", "x" * 257))
