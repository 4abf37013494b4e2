"""Unit tests of chalicelib.regex: PromQL (RE2) regexes -> a pattern Timestream runs identically,
or a refusal naming the construct."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.errors import BadRequest
from chalicelib.regex import compile_regex


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


@settings(max_examples=300, deadline=None)
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
