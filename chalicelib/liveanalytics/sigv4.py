"""AWS Signature Version 4 for the connector's Timestream calls, written directly.

botocore's `SigV4Auth` builds request objects and derives the signing key with four HMACs on
every call (~115 us a call); here the canonical request of the few fixed headers these calls
carry is written directly and the signing key is derived once per secret, day, region and
service (~15 us). Tests check both give the same signature for any input.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.utils import is_valid_ipv6_endpoint_url, normalize_url_path

_ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Signing keys derived (one per secret, day, region and service; a key is valid for its day).
_MAX_SIGNING_KEYS = 256
_signing_keys: dict[tuple[str, str, str, str], bytes] = {}
_signing_keys_lock = threading.Lock()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 key of a secret for one day (YYYYMMDD), region and service: four HMACs,
    derived once and kept, since every call of the day signs with the same one."""
    cache_key = (secret_key, date, region, service)
    key = _signing_keys.get(cache_key)
    if key is None:
        key = f"AWS4{secret_key}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        with _signing_keys_lock:
            if len(_signing_keys) >= _MAX_SIGNING_KEYS:
                _signing_keys.clear()
            _signing_keys[cache_key] = key
    return key


def host_header(url: str) -> str:
    """The Host header botocore signs for `url`: lowercase, without userinfo or a default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_valid_ipv6_endpoint_url(url):
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _canonical_path(url: str) -> str:
    return quote(normalize_url_path(urlsplit(url).path), safe="/~")


def _trimmed(value: str) -> str:
    # SigV4's Trimall: no surrounding white space, inner runs of it as one space.
    return " ".join(value.split())


class SigV4Signer:
    """Signs the POSTs of this module (AWS JSON 1.0, no query string) as botocore's `SigV4Auth`
    does, header for header: the same canonical request, string to sign and signature, without
    its request objects, and with the day's signing key kept (`signing_key`)."""

    def __init__(self, service: str, region: str, clock: Callable[[], float] = time.time) -> None:
        self._service = service
        self._region = region
        self._clock = clock
        # Per URL: (Host header, canonical path); a sender talks to one or two endpoints.
        self._urls: dict[str, tuple[str, str]] = {}

    def headers(self, credentials: Any, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """`headers` (names as sent; none of them Host, Authorization or X-Amz-*) with X-Amz-Date,
        X-Amz-Security-Token for temporary credentials, and Authorization added, for a POST of
        `body` to `url`. `credentials` has access_key, secret_key and token (botocore's)."""
        known = self._urls.get(url)
        if known is None:
            known = self._urls[url] = (host_header(url), _canonical_path(url))
        host, path = known
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        date = amz_date[:8]
        signed = dict(headers)
        signed["X-Amz-Date"] = amz_date
        token = credentials.token
        if token:
            signed["X-Amz-Security-Token"] = token
        # botocore signs every header but User-Agent (and a few hop-by-hop ones never sent here).
        canonical = {
            name.lower(): _trimmed(value) for name, value in signed.items() if name.lower() != "user-agent"
        }
        canonical["host"] = host
        names = sorted(canonical)
        signed_names = ";".join(names)
        canonical_request = "\n".join((
            "POST", path, "",
            "".join(f"{name}:{canonical[name]}\n" for name in names),
            signed_names,
            hashlib.sha256(body).hexdigest(),
        ))
        scope = f"{date}/{self._region}/{self._service}/aws4_request"
        string_to_sign = "\n".join(
            (_ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
        )
        key = signing_key(credentials.secret_key, date, self._region, self._service)
        signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        signed["Authorization"] = (
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
        return signed
