"""Timestream clients and write senders, created once per credential and reused.

Creating a botocore client costs ~90 ms (model loading, endpoint resolution), far more than a
typical write, so clients are cached per (service, credential) in a bounded LRU. The write path
uses no botocore client at all (transport.py); the read path's query client is one. One botocore
session is shared so service models are loaded once per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from chalicelib import USER_AGENT_PRODUCT
from chalicelib.auth import AccessKey
from chalicelib.config import Settings
from chalicelib.errors import ConnectorError
from chalicelib.liveanalytics.http_client import HttpClient
from chalicelib.liveanalytics.transport import EndpointCache, WriteRecordsSender

QUERY_SERVICE = "timestream-query"
_SENDER = "sender"


class ClientCache:
    """Bounded LRU of query clients and write senders keyed by service and credential."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._session: Any = None
        # Shared by every credential's sender: connections are per endpoint, not per key.
        self._http = HttpClient(
            settings.connect_timeout_seconds,
            settings.write_timeout_seconds,
            max_connections=max(10, settings.write_concurrency),
        )

    def query_client(self, credentials: AccessKey | None) -> Any:
        """A botocore timestream-query client signing with `credentials` (None: the function's role)."""
        return self._cached(QUERY_SERVICE, credentials, lambda: self._create_query_client(credentials))

    def write_sender(self, credentials: AccessKey | None) -> WriteRecordsSender:
        """The WriteRecords sender for `credentials` (see transport.py)."""
        return self._cached(_SENDER, credentials, lambda: self._create_sender(credentials))

    def _cached(self, kind: str, credentials: AccessKey | None, create: Callable[[], Any]) -> Any:
        # The secret is part of the key: a wrong secret must never reuse a good key's client.
        cache_key = (kind, credentials.cache_key if credentials else "")
        with self._lock:
            client = self._clients.get(cache_key)
            if client is not None:
                self._clients.move_to_end(cache_key)
                return client
        client = create()
        with self._lock:
            self._clients[cache_key] = client
            while len(self._clients) > self._settings.client_cache_size:
                self._clients.popitem(last=False)
        return client

    def _create_sender(self, credentials: AccessKey | None) -> WriteRecordsSender:
        if self._settings.region is None:
            raise ConnectorError("no AWS region configured: set AWS_REGION")
        if credentials is not None:
            from botocore.credentials import Credentials

            signing_credentials = Credentials(
                credentials.access_key_id, credentials.secret_access_key, credentials.session_token
            )
        else:
            signing_credentials = self._botocore_session().get_credentials()
            if signing_credentials is None:
                raise ConnectorError("AUTH_MODE=iam but the function has no AWS credentials")
        return WriteRecordsSender(
            signing_credentials,
            self._settings.region,
            # Per credential: discovery answers with the cell of the key's account.
            EndpointCache(self._settings.write_endpoint),
            self._http,
        )

    def _botocore_session(self) -> Any:
        # botocore.session is imported here, not at module import: the write path never needs
        # it in basic mode (see transport.py).
        import botocore.session

        with self._lock:
            if self._session is None:
                self._session = botocore.session.get_session()
            return self._session

    def _create_query_client(self, credentials: AccessKey | None) -> Any:
        from botocore.config import Config
        from botocore.exceptions import NoRegionError

        session = self._botocore_session()
        settings = self._settings
        endpoint = settings.query_endpoint
        config = Config(
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.query_timeout_seconds,
            retries={"total_max_attempts": settings.query_max_attempts, "mode": "standard"},
            max_pool_connections=max(10, settings.write_concurrency),
            tcp_keepalive=True,
            user_agent_extra=USER_AGENT_PRODUCT,
            # Timestream requires endpoint discovery unless an endpoint is given explicitly.
            endpoint_discovery_enabled=endpoint is None,
        )
        keys = {}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
        try:
            client = session.create_client(
                QUERY_SERVICE, region_name=settings.region, endpoint_url=endpoint, config=config, **keys
            )
        except NoRegionError:
            raise ConnectorError("no AWS region configured: set AWS_REGION") from None
        return client
