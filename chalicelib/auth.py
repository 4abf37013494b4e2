"""Basic-auth credential handling: `Authorization: Basic base64(accessKeyId:secretKey)`.

Prometheus sends the IAM access key pair as HTTP basic auth; each request's Timestream calls are
signed with it. Parsing is strict and every failure is a 401 whose message never repeats what
was sent, so a secret cannot leak through logs or Prometheus's error output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from chalicelib.errors import Unauthorized

# IAM access key ids are 16-128 word characters; secrets are printable ASCII without spaces.
_ACCESS_KEY_ID = re.compile(r"\w{16,128}", re.ASCII)
_SECRET = re.compile(r"[\x21-\x7e]{1,256}")


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @property
    def cache_key(self) -> str:
        """Identifies the pair without holding the secret in plain text."""
        digest = hashlib.sha256(self.secret_access_key.encode()).hexdigest()
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
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("Authorization header is not valid base64") from None
    access_key_id, colon, secret = decoded.partition(":")
    if not colon:
        raise Unauthorized("basic auth credentials must be accessKeyId:secretAccessKey")
    if not _ACCESS_KEY_ID.fullmatch(access_key_id):
        raise Unauthorized("basic auth username is not an AWS access key id")
    if not _SECRET.fullmatch(secret):
        raise Unauthorized("basic auth password is not an AWS secret access key")
    return AccessKey(access_key_id, secret)
