"""AUTH_MODE=iam: the function's InfluxDB token, read from AWS Secrets Manager once per container.

One `GetSecretValue` call, signed with SigV4 by botocore's signer with the function's role
credentials (botocore's credential chain: the Lambda environment's keys), sent over http.client:
no botocore client is created (~100 ms), and botocore is imported only when the first request
needs the token, never at cold start. The token is kept for the container's life; a failed read
is not kept, so the next request tries again.

`AWS_ENDPOINT_URL_SECRETS_MANAGER` (or `AWS_ENDPOINT_URL`), as botocore reads them, points it
at a local stand-in or a VPC endpoint.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.parse

from chalicelib.errors import Forbidden, ServiceUnavailable, one_line
from chalicelib.influxdb.credentials import InfluxDBCredentials, from_secret

_TARGET = "secretsmanager.GetSecretValue"
_DENIED = frozenset({
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException", "ResourceNotFoundException", "DecryptionFailure",
    "InvalidRequestException", "InvalidParameterException",
})


def region_of(arn: str, default: str | None) -> str | None:
    """The region of a secret's ARN (arn:aws:secretsmanager:<region>:...), else `default`."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else default


class TokenSource:
    """The function's InfluxDB credentials, read once and kept."""

    def __init__(self, secret_arn: str, region: str | None, timeout: float = 5.0) -> None:
        self.secret_arn = secret_arn
        self.region = region_of(secret_arn, region)
        self.timeout = timeout
        self._credentials: InfluxDBCredentials | None = None
        self._lock = threading.Lock()

    def credentials(self) -> InfluxDBCredentials:
        if self._credentials is None:
            with self._lock:
                if self._credentials is None:
                    self._credentials = self._read()
        return self._credentials

    def _endpoint(self) -> str:
        override = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or os.environ.get("AWS_ENDPOINT_URL")
        return override or f"https://secretsmanager.{self.region}.amazonaws.com"

    def _read(self) -> InfluxDBCredentials:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.session import get_session

        if not self.region:
            raise Forbidden("INFLUXDB_TOKEN_SECRET_ARN is not an ARN with a region and AWS_REGION is unset")
        aws_credentials = get_session().get_credentials()
        if aws_credentials is None:
            raise Forbidden("no AWS credentials to read the InfluxDB token from Secrets Manager")
        url = self._endpoint().rstrip("/") + "/"
        body = json.dumps({"SecretId": self.secret_arn}).encode()
        request = AWSRequest("POST", url, data=body, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": _TARGET,
        })
        SigV4Auth(aws_credentials.get_frozen_credentials(), "secretsmanager", self.region).add_auth(request)
        parts = urllib.parse.urlsplit(url)
        https = parts.scheme == "https"
        connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
        connection = connection_class(parts.hostname or "", parts.port, timeout=self.timeout)
        try:
            connection.request("POST", parts.path or "/", body=body, headers=dict(request.headers.items()))
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ServiceUnavailable(
                "Secrets Manager did not answer reading the InfluxDB token, retry later "
                f"({type(error).__name__})"
            ) from None
        finally:
            connection.close()
        try:
            document = json.loads(data)
        except ValueError:
            document = {}
        if response.status != 200:
            code = str(document.get("__type", "")).rpartition("#")[2] or f"HTTP {response.status}"
            if code in _DENIED or 400 <= response.status < 500 and response.status != 429:
                # AWS's text is left out: it can quote the role and the secret's ARN at length.
                raise Forbidden(
                    f"Secrets Manager refused to give the InfluxDB token (INFLUXDB_TOKEN_SECRET_ARN): {code}"
                )
            raise ServiceUnavailable(
                f"Secrets Manager failed reading the InfluxDB token, retry later ({code})"
            )
        secret = document.get("SecretString")
        if not isinstance(secret, str):
            raise Forbidden("the secret INFLUXDB_TOKEN_SECRET_ARN names holds no SecretString")
        try:
            return from_secret(secret)
        except ValueError as error:
            raise Forbidden(f"INFLUXDB_TOKEN_SECRET_ARN: {one_line(str(error))}") from None
