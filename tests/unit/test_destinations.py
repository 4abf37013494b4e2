from dataclasses import replace

from hypothesis import find, given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.destinations import Destination, is_valid_destination, route

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
