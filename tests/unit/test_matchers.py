"""Unit tests of chalicelib.matchers: PromQL label matchers from the protobuf, and their semantics."""

import pytest

from chalicelib.errors import BadRequest
from chalicelib.matchers import EQ, NEQ, NRE, RE, Matcher, matchers_from_pb
from chalicelib.prompb import prometheus_remote_pb2 as pb


def test_matchers_are_read_from_the_query_in_order():
    query = pb.Query(matchers=[
        pb.LabelMatcher(type=pb.LabelMatcher.NRE, name="a", value="x+"),
        pb.LabelMatcher(type=pb.LabelMatcher.EQ, name="__name__", value="up"),
        pb.LabelMatcher(type=pb.LabelMatcher.NEQ, name="b", value=""),
        pb.LabelMatcher(type=pb.LabelMatcher.RE, name="c", value="y"),
    ])
    assert matchers_from_pb(query) == [
        Matcher(NRE, "a", "x+"), Matcher(EQ, "__name__", "up"), Matcher(NEQ, "b", ""), Matcher(RE, "c", "y"),
    ]


def test_unknown_matcher_types_are_refused():
    with pytest.raises(BadRequest, match="matcher type 7"):
        matchers_from_pb(pb.Query(matchers=[pb.LabelMatcher(type=7, name="a", value="b")]))


@pytest.mark.parametrize(
    ("matcher", "value", "matches"),
    [
        (Matcher(EQ, "l", ""), "", True),  # "" stands for an absent label
        (Matcher(EQ, "l", "a"), "", False),
        (Matcher(NEQ, "l", "a"), "", True),
        (Matcher(RE, "l", "a|"), "", True),
        (Matcher(RE, "l", "a"), "ab", False),  # anchored at both ends
        (Matcher(NRE, "l", "a.*"), "ab", False),
        (Matcher(NRE, "l", "a"), "ab", True),
    ],
)
def test_matching_follows_prometheus(matcher, value, matches):
    assert matcher.matches(value) is matches


@pytest.mark.parametrize(
    ("matcher", "exact"),
    [(Matcher(EQ, "l", "prod"), "prod"), (Matcher(RE, "l", r"prod\.1"), "prod.1"), (Matcher(EQ, "l", ""), None),
     (Matcher(RE, "l", ""), None), (Matcher(RE, "l", "prod.*"), None), (Matcher(NEQ, "l", "prod"), None),
     (Matcher(NRE, "l", "prod"), None)],
)
def test_exact_value_is_the_one_non_empty_value_a_matcher_names(matcher, exact):
    assert matcher.exact_value() == exact


def test_a_matcher_prints_as_in_promql():
    assert str(Matcher(NRE, "job", 'a"b')) == 'job!~"a\\"b"'
