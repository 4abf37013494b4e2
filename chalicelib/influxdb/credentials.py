"""What the InfluxDB calls of a request are made with: the `Authorization` header to send.

AUTH_MODE=basic: the sender's basic auth is InfluxDB's own (user and password on 1.x; any user
and an API token as the password on 2.x and 3), checked for shape here and forwarded; InfluxDB
judges it. AUTH_MODE=iam: API Gateway has authorized the caller, and the function's own token is
read from AWS Secrets Manager once per container (secrets.py). Neither is ever logged or echoed:
`InfluxDBCredentials` hides its header from repr.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from chalicelib.errors import Unauthorized

_HOW = "send the InfluxDB user and password (1.x), or any user and an API token (2.x, 3), as basic auth"


@dataclass(frozen=True)
class InfluxDBCredentials:
    authorization: str = field(repr=False)


def from_basic_authorization(header: str | None) -> InfluxDBCredentials:
    """The credentials of a Basic Authorization header, or Unauthorized; the message never
    repeats what was sent."""
    if not header:
        raise Unauthorized(f"missing Authorization header: {_HOW}")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise Unauthorized(f"Authorization must use the Basic scheme: {_HOW}")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Unauthorized("Authorization header is not valid base64") from None
    user, colon, password = decoded.partition(":")
    if not colon or not password:
        raise Unauthorized(f"basic auth credentials must be user:password: {_HOW}")
    # Re-encoded from what was decoded: exactly the user and password, whatever spacing was sent.
    return InfluxDBCredentials("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


def from_secret(secret: str) -> InfluxDBCredentials:
    """The credentials a Secrets Manager secret holds: JSON {"token": ...} or a bare token
    (InfluxDB 2.x and 3: `Authorization: Token`), or JSON {"username": ..., "password": ...}
    (basic auth, as 1.x wants). Raises ValueError naming what is missing, never the value."""
    import json

    text = secret.strip()
    document = None
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ValueError("the secret is neither a token nor a JSON object") from None
    if document is None:
        if not text:
            raise ValueError("the secret is empty")
        return InfluxDBCredentials(f"Token {text}")
    if isinstance(document.get("token"), str) and document["token"]:
        return InfluxDBCredentials(f"Token {document['token']}")
    user, password = document.get("username"), document.get("password")
    if isinstance(user, str) and isinstance(password, str) and password:
        return InfluxDBCredentials("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    raise ValueError('the secret\'s JSON has neither "token" nor "username" and "password"')
