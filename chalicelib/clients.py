"""Timestream clients, created once per credential and reused.

Creating a botocore client costs ~90 ms (model loading, endpoint resolution), far more than a
typical write, so clients are cached per (service, credential) in a bounded LRU. One botocore
session is shared so service models are loaded once per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from chalicelib.auth import AccessKey
from chalicelib.config import Settings
from chalicelib.errors import ConnectorError
from chalicelib.write_body import install_prebuilt_body_hooks

WRITE_SERVICE = "timestream-write"
QUERY_SERVICE = "timestream-query"

# The connector does its own retries inside a time budget (see writer), so botocore's are off.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0


class ClientCache:
    """Bounded LRU of botocore clients keyed by service and credential."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._session: Any = None

    def get(self, service: str, credentials: AccessKey | None) -> Any:
        """A client for `service` signing with `credentials` (None: the function's own role)."""
        key = (service, credentials.cache_key if credentials else "")
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        client = self._create(service, credentials)
        with self._lock:
            self._clients[key] = client
            while len(self._clients) > self._settings.client_cache_size:
                self._clients.popitem(last=False)
        return client

    def _create(self, service: str, credentials: AccessKey | None) -> Any:
        # botocore is imported here, not at module import, to keep cold start short for
        # requests that never reach AWS (bad input, bad credentials).
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import NoRegionError

        with self._lock:
            if self._session is None:
                self._session = botocore.session.get_session()
            session = self._session
        settings = self._settings
        endpoint = settings.write_endpoint if service == WRITE_SERVICE else settings.query_endpoint
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, settings.write_concurrency),
            tcp_keepalive=True,
            # Records are checked against every Timestream limit before a call (records.py),
            # and the write body is prebuilt (write_body.py): botocore's validation is redundant.
            parameter_validation=service != WRITE_SERVICE,
            # Timestream requires endpoint discovery unless an endpoint is given explicitly.
            endpoint_discovery_enabled=endpoint is None,
        )
        keys = {}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
            }
        try:
            client = session.create_client(
                service, region_name=settings.region, endpoint_url=endpoint, config=config, **keys
            )
        except NoRegionError:
            raise ConnectorError("no AWS region configured: set AWS_REGION") from None
        if service == WRITE_SERVICE:
            install_prebuilt_body_hooks(client)
        return client
