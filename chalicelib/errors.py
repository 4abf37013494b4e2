"""Errors that end a request, each carrying the HTTP status it maps to.

The status is the data-loss policy (Prometheus drops a batch on 4xx and retries it on 5xx), so
every error states which side it falls on. Messages are one readable line and never contain
credentials.
"""

from __future__ import annotations


class ConnectorError(Exception):
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ConnectorError):
    """The request can never succeed as sent: retrying it would only repeat the failure."""

    status = 400


class Unauthorized(ConnectorError):
    """Credentials are missing or malformed; nothing was attempted with AWS."""

    status = 401


class Forbidden(ConnectorError):
    """AWS refused the credentials or the action."""

    status = 403


class NotFound(ConnectorError):
    """The database or table does not exist."""

    status = 404


class PayloadTooLarge(ConnectorError):
    status = 413


class UnsupportedMediaType(ConnectorError):
    status = 415


class ServiceUnavailable(ConnectorError):
    """Transient: throttling, Timestream 5xx, timeouts. Prometheus retries the whole request,
    which is safe because Timestream accepts an identical rewrite."""

    status = 503


# AWS error codes, shared by the write and read paths: which refusals a retry can fix, and which
# mean the credentials or the permissions are wrong.
TRANSIENT_AWS_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
     "InternalServerException", "ServiceUnavailable", "ServiceUnavailableException",
     "RequestTimeout", "RequestTimeoutException",
     # A discovered endpoint that moved: the next attempt discovers again.
     "InvalidEndpointException"}
)
FORBIDDEN_AWS_CODES = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
     "SignatureDoesNotMatch", "ExpiredTokenException", "InvalidClientTokenId",
     "MissingAuthenticationTokenException", "IncompleteSignature"}
)
