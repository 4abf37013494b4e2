"""Temporary credentials (basic auth password `secret:sessionToken`) sign both paths' calls."""

from chalicelib.auth import AccessKey
from chalicelib.config import Settings
from chalicelib.liveanalytics.clients import ClientCache

SETTINGS = Settings(region="us-east-1", query_endpoint="http://127.0.0.1:1", write_endpoint="http://127.0.0.1:1")
TEMPORARY = AccessKey("ASIATESTEXAMPLE00001", "secret", "token-one")


def test_the_query_client_signs_with_the_session_token():
    client = ClientCache(SETTINGS).query_client(TEMPORARY)
    assert client._request_signer._credentials.token == "token-one"


def test_the_query_client_names_the_connector_in_its_user_agent():
    client = ClientCache(SETTINGS).query_client(TEMPORARY)
    assert client.meta.config.user_agent_extra.startswith("prometheus-timestream/")


def test_a_new_session_token_gets_its_own_client_and_sender():
    cache = ClientCache(SETTINGS)
    renewed = AccessKey(TEMPORARY.access_key_id, TEMPORARY.secret_access_key, "token-two")
    assert cache.query_client(TEMPORARY) is not cache.query_client(renewed)
    assert cache.write_sender(TEMPORARY) is not cache.write_sender(renewed)
    assert cache.write_sender(renewed) is cache.write_sender(renewed)


def test_the_session_token_never_shows_in_the_credential_repr():
    assert "token-one" not in repr(TEMPORARY) and "secret" not in repr(TEMPORARY)
