import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.auth import AccessKey, parse_basic_authorization
from chalicelib.errors import Unauthorized
from tests.helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, basic_auth


def encoded(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_access_key_pair_is_read_from_basic_auth():
    key = parse_basic_authorization(basic_auth())
    assert key == AccessKey(ACCESS_KEY_ID, SECRET_ACCESS_KEY)


def test_scheme_is_case_insensitive():
    token = basic_auth().split(" ", 1)[1]
    assert parse_basic_authorization("basic " + token).access_key_id == ACCESS_KEY_ID


def test_a_colon_in_the_password_separates_the_secret_from_a_session_token():
    token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
    key = parse_basic_authorization(encoded(f"{ACCESS_KEY_ID}:wJalrXUtnFEMI/K7MDENG:{token}"))
    assert (key.secret_access_key, key.session_token) == ("wJalrXUtnFEMI/K7MDENG", token)


def test_a_password_without_a_colon_is_a_long_lived_key_without_token():
    assert parse_basic_authorization(encoded(f"{ACCESS_KEY_ID}:wJalrXUtnFEMI/K7MDENG")).session_token is None


@pytest.mark.parametrize("password", ["secret:", "secret:short", "secret:has space in it please", "secret:a:b" * 3])
def test_a_malformed_session_token_is_401_without_repeating_it(password):
    with pytest.raises(Unauthorized) as raised:
        parse_basic_authorization(encoded(f"{ACCESS_KEY_ID}:{password}"))
    assert "session token" in raised.value.message
    assert password.partition(":")[2] not in raised.value.message or not password.partition(":")[2]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        encoded("no-colon-here"),
        encoded(f":{SECRET_ACCESS_KEY}"),
        encoded(f"{ACCESS_KEY_ID}:"),
        encoded(f"short:{SECRET_ACCESS_KEY}"),
        encoded(f"AKIA EXAMPLE 0000000:{SECRET_ACCESS_KEY}"),
        encoded(f"{ACCESS_KEY_ID}:has space"),
    ],
)
def test_missing_or_malformed_credentials_are_unauthorized(header):
    with pytest.raises(Unauthorized):
        parse_basic_authorization(header)


# -- every refusal, whatever was sent, says which part is wrong and repeats none of it -----------

def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def inserted(text, chars):
    """`text` with one of `chars` put somewhere in it."""
    return st.tuples(st.integers(0, len(text)), st.sampled_from(chars)).map(lambda at: text[:at[0]] + at[1] + text[at[0]:])


# What passes for an access key id and a secret (min sizes keep them from matching message words).
key_ids = st.from_regex(r"[A-Z0-9]{16,40}", fullmatch=True)
secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=60)
ascii_not_base64 = list("!*-_.~@#$%^&(){}[]|;,?<>")  # whitespace around a token is ignored


def as_basic_auth(key_id, secret):
    """(header, what it sends) for a key id and secret sent as Prometheus sends them."""
    token = b64(f"{key_id}:{secret}")
    return "Basic " + token, [key_id, secret, token]


@st.composite
def bad_scheme(draw):
    _, sent = as_basic_auth(draw(key_ids), draw(secrets))
    scheme = draw(st.sampled_from(["Bearer ", "Digest ", "AWS4-HMAC-SHA256 ", "Basik ", "Basic:", ""]))
    return scheme + sent[-1], sent


@st.composite
def bad_base64(draw):
    _, (key_id, secret, token) = as_basic_auth(draw(key_ids), draw(secrets))
    broken = draw(st.one_of(
        inserted(token, ascii_not_base64),                                    # not the alphabet
        st.just(token.rstrip("=") if token.endswith("=") else token + "Q"),   # padding or length wrong
        st.binary(min_size=8).map(lambda raw: b64(b"\xff" + raw)),             # not UTF-8 inside
    ))
    return "Basic " + broken, [key_id, secret, broken]


@st.composite
def no_colon(draw):
    text = draw(st.text(st.characters(codec="utf-8", exclude_characters=":"), min_size=8, max_size=60))
    token = b64(text)
    return "Basic " + token, [text, token]


@st.composite
def bad_key_id(draw):
    key_id = draw(st.one_of(
        st.from_regex(r"[A-Za-z0-9_]{8,15}", fullmatch=True),                   # too short
        st.from_regex(r"[A-Za-z0-9_]{129,140}", fullmatch=True),                 # too long
        key_ids.flatmap(lambda valid: inserted(valid, list("-+/= .\t"))),       # not word characters
        key_ids.flatmap(lambda valid: inserted(valid, list("éßЖ٣"))),           # word characters, not ASCII
        st.just(""),
    ))
    return as_basic_auth(key_id, draw(secrets))


@st.composite
def bad_secret(draw):
    key_id = draw(key_ids)  # a valid-looking id with a secret that cannot be one
    secret = draw(st.one_of(
        secrets.flatmap(lambda valid: inserted(valid, list(" \t\x00\x7féü€"))),  # not printable ASCII
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=257, max_size=300),  # too long
        st.just(""),
    ))
    return as_basic_auth(key_id, secret)


# Each refusal branch: how to reach it, and the words that say it is the one hit.
REFUSALS = {
    "missing": (st.sampled_from([None, ""]).map(lambda header: (header, [])), "missing Authorization"),
    "scheme": (bad_scheme(), "Basic scheme"),
    "base64": (bad_base64(), "base64"),
    "no-colon": (no_colon(), "accessKeyId:secretAccessKey"),
    "key-id": (bad_key_id(), "username"),
    "secret": (bad_secret(), "password"),
}


@pytest.mark.parametrize("branch", REFUSALS)
@given(data=st.data())
def test_every_refusal_names_what_is_wrong_and_never_echoes_what_was_sent(branch, data):
    strategy, says = REFUSALS[branch]
    header, sent = data.draw(strategy)
    with pytest.raises(Unauthorized) as raised:
        parse_basic_authorization(header)
    message = raised.value.message
    assert says in message, f"{branch!r} refusal reached another branch: {message!r}"
    assert [other for other, (_, words) in REFUSALS.items() if words in message] == [branch]
    for part in sent:
        # A short part can be a word of the fixed wording by chance (a drawn secret "username");
        # anything as long as a real key id or secret is never in the message.
        if len(part) >= 12:
            assert part not in message


@given(st.text(st.characters(min_codepoint=0x80, max_codepoint=0x2FF), min_size=1, max_size=8))
def test_a_token_with_non_ascii_characters_is_refused_as_not_base64(text):
    with pytest.raises(Unauthorized, match="base64"):
        parse_basic_authorization("Basic QUtJQ" + text)


def test_secret_is_not_in_repr_or_cache_key():
    key = parse_basic_authorization(basic_auth())
    assert SECRET_ACCESS_KEY not in repr(key)
    assert SECRET_ACCESS_KEY not in key.cache_key
    assert key.cache_key != AccessKey(ACCESS_KEY_ID, "other-secret").cache_key
