"""The Authorization the InfluxDB engine sends: the sender's basic auth, checked for shape and
forwarded; or the function's token from a Secrets Manager secret. Never repeated in messages."""

from __future__ import annotations

import base64

import pytest

from chalicelib.errors import Unauthorized
from chalicelib.influxdb.credentials import from_basic_authorization, from_secret
from chalicelib.influxdb.secrets import region_of


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("userpass", ["admin:pässword:with:colons", ":my-api-token==", "token:abc"])
def test_basic_auth_is_forwarded_as_the_same_user_and_password(userpass):
    credentials = from_basic_authorization(basic(userpass))
    assert credentials.authorization == basic(userpass)
    assert "authorization" not in repr(credentials).lower().replace("influxdbcredentials", "")
    assert userpass.split(":", 1)[1] not in repr(credentials)


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Basic", "Basic !!!", basic("nocolon"), basic("user:")])
def test_missing_or_malformed_basic_auth_is_401_without_repeating_it(header):
    with pytest.raises(Unauthorized) as refused:
        from_basic_authorization(header)
    assert "basic auth" in refused.value.message.lower() or "base64" in refused.value.message
    if header and " " in header:
        assert header.split(" ", 1)[1] not in refused.value.message


@pytest.mark.parametrize(("secret", "authorization"), [
    ("my-token", "Token my-token"),
    (' {"token": "t0k"} ', "Token t0k"),
    ('{"username": "u", "password": "p"}', basic("u:p")),
])
def test_a_secret_holds_a_token_or_a_user_and_password(secret, authorization):
    assert from_secret(secret).authorization == authorization


@pytest.mark.parametrize("secret", ["", "{not json", '{"username": "u"}', '{"token": ""}'])
def test_an_unusable_secret_says_what_is_missing_never_its_value(secret):
    with pytest.raises(ValueError) as refused:
        from_secret(secret)
    assert "not json" not in str(refused.value)


def test_the_region_comes_from_the_secrets_arn():
    assert region_of("arn:aws:secretsmanager:eu-west-3:123456789012:secret:influx-AbCdEf", "us-east-1") == "eu-west-3"
    assert region_of("influx-token", "us-east-1") == "us-east-1"
