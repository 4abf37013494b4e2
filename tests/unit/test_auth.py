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


@given(st.text(max_size=40))
def test_error_messages_never_echo_what_was_sent(text):
    # A marker no message contains, with arbitrary text (spaces make the secret invalid).
    secret = f"Zq9-{text} "
    header = encoded(f"{ACCESS_KEY_ID}:{secret}")
    with pytest.raises(Unauthorized) as raised:
        parse_basic_authorization(header)
    assert "Zq9-" not in raised.value.message
    assert ACCESS_KEY_ID not in raised.value.message


def test_secret_is_not_in_repr_or_cache_key():
    key = parse_basic_authorization(basic_auth())
    assert SECRET_ACCESS_KEY not in repr(key)
    assert SECRET_ACCESS_KEY not in key.cache_key
    assert key.cache_key != AccessKey(ACCESS_KEY_ID, "other-secret").cache_key
