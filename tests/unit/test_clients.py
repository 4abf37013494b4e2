"""Timestream clients and write senders are cached per credential (access key id AND secret) in
an LRU bounded by CLIENT_CACHE_SIZE. Only the public API is used: `write_sender(key)` and
`query_client(key)` hand out the cached object, so `is` tells a cache hit from a new one."""

from dataclasses import replace

import pytest

from chalicelib.auth import AccessKey
from chalicelib.config import Settings
from chalicelib.liveanalytics.clients import ClientCache

# Endpoints given, so nothing is discovered (and nothing is sent: no call is made here).
SETTINGS = Settings(region="us-east-1", write_endpoint="http://127.0.0.1:9", query_endpoint="http://127.0.0.1:9")
KEY_ID = "AKIAEXAMPLEKEY000001"

ACCESSORS = {
    "write-sender": lambda cache, key: cache.write_sender(key),
    "query-client": lambda cache, key: cache.query_client(key),
}


@pytest.fixture(params=list(ACCESSORS))
def obtain(request):
    return ACCESSORS[request.param]


def test_the_same_credential_gets_the_same_object(obtain):
    cache = ClientCache(SETTINGS)
    first = obtain(cache, AccessKey(KEY_ID, "secret-one"))
    assert obtain(cache, AccessKey(KEY_ID, "secret-one")) is first


def test_the_same_key_id_with_another_secret_gets_its_own_object(obtain):
    # A wrong secret must not sign with the right one's cached client (nor the other way round).
    cache = ClientCache(SETTINGS)
    right = obtain(cache, AccessKey(KEY_ID, "secret-one"))
    wrong = obtain(cache, AccessKey(KEY_ID, "secret-two"))
    assert wrong is not right
    assert obtain(cache, AccessKey(KEY_ID, "secret-one")) is right
    assert obtain(cache, AccessKey(KEY_ID, "secret-two")) is wrong


def test_client_cache_size_bounds_the_cache_evicting_the_least_recently_used(obtain):
    cache = ClientCache(replace(SETTINGS, client_cache_size=2))
    a, b, c = (AccessKey(KEY_ID, f"secret-{name}") for name in "abc")
    first_a, first_b = obtain(cache, a), obtain(cache, b)
    # Both fit; using a again makes b the least recently used.
    assert obtain(cache, b) is first_b
    assert obtain(cache, a) is first_a
    obtain(cache, c)  # one over the bound: b goes
    assert obtain(cache, a) is first_a
    assert obtain(cache, b) is not first_b
