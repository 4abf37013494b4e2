"""SigV4 signatures checked the way AWS checks them, against the key pairs the local run knows.

The signature is recomputed with botocore's own signer over the request as received (method,
path, query, the headers the caller listed in SignedHeaders, the body's SHA-256, the caller's
X-Amz-Date and credential scope) with the secret the local run holds for the access key id,
and compared with the one sent. Refusals are AWS's (JSON protocol; HTTP 403 as the connector's
contract and its e2e proxy use): an unknown access key id is `UnrecognizedClientException`, a
wrong secret (or anything else that changes the signature) `InvalidSignatureException`, a
request without SigV4 `MissingAuthenticationTokenException`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from local_timestream.rules import TimestreamError

SERVICE = "timestream"
UNRECOGNIZED_CLIENT = "The security token included in the request is invalid."
INVALID_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                     "Check your AWS Secret Access Key and signing method. "
                     "Consult the service documentation for details.")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)\s*$"
)


def check_signature(method: str, url: str, headers: Mapping[str, str], body: bytes,
                    credentials: Mapping[str, str]) -> None:
    """Raise TimestreamError (403) unless the request is signed with one of `credentials`
    (access key id -> secret access key). `url` is scheme://host/path?query as received."""
    lower = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.match(lower.get("authorization", ""))
    if match is None or "x-amz-date" not in lower:
        raise TimestreamError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
    secret = credentials.get(match["key"])
    if secret is None:
        raise TimestreamError("UnrecognizedClientException", 403, UNRECOGNIZED_CLIENT)
    if match["service"] != SERVICE:
        raise TimestreamError("InvalidSignatureException", 403,
                              f"Credential should be scoped to correct service: '{SERVICE}'.")
    payload_hash = hashlib.sha256(body).hexdigest()
    declared = lower.get("x-amz-content-sha256")
    if declared not in (None, payload_hash, "UNSIGNED-PAYLOAD"):
        raise TimestreamError("InvalidSignatureException", 403,
                              "The provided 'x-amz-content-sha256' header does not match what was computed.")
    expected = _signature(method, url, lower, match["signed"].split(";"), declared or payload_hash,
                          match["key"], secret, match["region"], lower["x-amz-date"])
    if not hmac.compare_digest(expected, match["signature"]):
        raise TimestreamError("InvalidSignatureException", 403, INVALID_SIGNATURE)


def _signature(method: str, url: str, headers: Mapping[str, str], signed: list[str], payload_hash: str,
               access_key_id: str, secret: str, region: str, amz_date: str) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials

    class Recompute(SigV4Auth):
        """botocore's signer, limited to what the caller signed, over the body as received."""

        def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
            chosen = HTTPHeaders()
            for name in signed:
                chosen[name] = headers.get(name, "")
            return chosen

        def payload(self, request: AWSRequest) -> str:
            return payload_hash

    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.context["timestamp"] = amz_date
    signer = Recompute(Credentials(access_key_id, secret), SERVICE, region)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)
