"""RE2 constructs that mutation testing showed no test exercised, each checked against what
RE2 (PromQL) means by it: full-match semantics on a few values."""

import pytest

from chalicelib.regex import compile_regex


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        # (?s) reaches into a group that sets other flags.
        ("(?s)(?:a.b|(?i)x)", ["a\nb", "X"], ["ab"]),
        # A later flag group keeps the flags it does not name.
        ("(?s)(?i)a.b", ["A\nB"], ["ab"]),
        # A negated POSIX class.
        ("[[:^alpha:]]+", ["123", "-_"], ["abc", "a1"]),
        # A Perl class inside brackets.
        (r"[\d]+", ["0123"], ["12a"]),
        (r"[\D]", ["x"], ["5"]),
        # \A anchors at the start (it is not \a, the bell).
        (r"\Aab", ["ab"], ["xab", "\x07ab"]),
        # \Q...\E quotes, also when empty.
        (r"a\Q.*\E", ["a.*"], ["axx", "a"]),
        (r"a\Q\Eb", ["ab"], ["a\\Eb"]),
        # An alternation nested in a concatenation keeps its own group.
        ("(a|b)c|d", ["ac", "bc", "d"], ["a", "bcd", "c"]),
    ],
)
def test_re2_constructs_mean_what_re2_means(pattern, matching, not_matching):
    regex = compile_regex(pattern)
    assert all(regex.matches(value) for value in matching), pattern
    assert not any(regex.matches(value) for value in not_matching), pattern
