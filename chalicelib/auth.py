"""Basic-auth credential handling: `Authorization: Basic base64(accessKeyId:secretKey)`.

Prometheus sends the IAM access key pair as HTTP basic auth; each request's Timestream calls are
signed with it. Temporary credentials (from STS) carry a session token too: the password is then
`secretKey:sessionToken` (a secret access key never contains a colon, so the split is exact).
Parsing is strict and every failure is a 401 whose message never repeats what was sent, so a
secret or token cannot leak through logs or Prometheus's error output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from chalicelib.errors import Unauthorized

# IAM access key ids are 16-128 word characters; secrets are printable ASCII without spaces or
# colons; session tokens are base64 text, a few hundred to a few thousand characters.
_ACCESS_KEY_ID = re.compile(r"\w{16,128}", re.ASCII)
_SECRET = re.compile(r"[\x21-\x39\x3b-\x7e]{1,256}")
_SESSION_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{16,8192}")


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def cache_key(self) -> str:
        """Identifies the credential without holding the secret or token in plain text."""
        digest = hashlib.sha256(f"{self.secret_access_key}:{self.session_token or ''}".encode()).hexdigest()
        return f"{self.access_key_id}:{digest}"


def parse_basic_authorization(header: str | None) -> AccessKey:
    """Return the access key pair in a Basic Authorization header, or raise Unauthorized."""
    if not header:
        raise Unauthorized("missing Authorization header: send the IAM access key as basic auth")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise Unauthorized("Authorization must use the Basic scheme")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # ValueError: not ASCII, or not UTF-8 once decoded
        raise Unauthorized("Authorization header is not valid base64") from None
    access_key_id, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthorized("basic auth credentials must be accessKeyId:secretAccessKey")
    if not _ACCESS_KEY_ID.fullmatch(access_key_id):
        raise Unauthorized("basic auth username is not an AWS access key id")
    secret, has_token, token = password.partition(":")
    if not _SECRET.fullmatch(secret):
        raise Unauthorized("basic auth password is not an AWS secret access key")
    if has_token and not _SESSION_TOKEN.fullmatch(token):
        raise Unauthorized(
            "basic auth password has a colon but what follows is not an AWS session token "
            "(expected secretAccessKey:sessionToken)"
        )
    return AccessKey(access_key_id, secret, token if has_token else None)
