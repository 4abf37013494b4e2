"""PromQL label matchers, as remote read sends them, with Prometheus's semantics.

A matcher compares one label's value: `=` and `!=` with text, `=~` and `!~` with an RE2 regex
fully anchored at both ends. A series without the label is matched as if its value were "".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import BadRequest
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.regex import compile_regex

METRIC_NAME_LABEL = "__name__"

EQ, NEQ, RE, NRE = "=", "!=", "=~", "!~"
_OPERATORS = {
    pb.LabelMatcher.EQ: EQ,
    pb.LabelMatcher.NEQ: NEQ,
    pb.LabelMatcher.RE: RE,
    pb.LabelMatcher.NRE: NRE,
}


@dataclass(frozen=True)
class Matcher:
    """One PromQL label matcher: `op` is one of "=", "!=", "=~", "!~"."""

    op: str
    name: str
    value: str

    def matches(self, value: str) -> bool:
        """Prometheus semantics for one label value ("" stands for an absent label)."""
        if self.op == EQ:
            return value == self.value
        if self.op == NEQ:
            return value != self.value
        matched = compile_regex(self.value).matches(value)
        return matched if self.op == RE else not matched

    def exact_value(self) -> str | None:
        """The one non-empty value this matcher accepts when it names one (`="v"`, or `=~"v"`
        with a regex that is plain text), else None."""
        if self.op == EQ:
            return self.value or None
        if self.op == RE:
            return compile_regex(self.value).literal or None
        return None

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def matchers_from_pb(query: Any) -> list[Matcher]:
    """The matchers of a `prompb.Query`, in order. Unknown matcher types are a BadRequest."""
    matchers = []
    for matcher in query.matchers:
        op = _OPERATORS.get(matcher.type)
        if op is None:
            raise BadRequest(f"unknown label matcher type {matcher.type}")
        matchers.append(Matcher(op, matcher.name, matcher.value))
    return matchers
