"""The connector's error model: every way a request can fail, as one status and one line.

The status is the data-loss policy (Prometheus drops a batch on 4xx and retries it on 5xx), so
every error states which side it falls on. Messages are one readable line and never contain
credentials, nor AWS's text for refused credentials (it can quote request details).

Timestream's own failures arrive in two shapes: `TimestreamError` (an error answer: code,
message, HTTP status, rejected records) and `TimestreamUnreachable` (no answer at all). The
write path parses them from the HTTP exchange itself (transport.py); the read path gets them
from botocore (`from_botocore`). `classify` is the one place that decides what either means
for the caller.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


class ConnectorError(Exception):
    """A request (or part of one) that cannot be served; `reason` is a stable key for logs."""

    status: int = 500
    reason: str = "internal_error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class BadRequest(ConnectorError):
    """The request can never succeed as sent: retrying it would only repeat the failure."""

    status = 400
    reason = "bad_request"


class Unauthorized(ConnectorError):
    """Credentials are missing or malformed; nothing was attempted with AWS."""

    status = 401
    reason = "unauthorized"


class Forbidden(ConnectorError):
    """AWS refused the credentials or the action."""

    status = 403
    reason = "forbidden"


class NotFound(ConnectorError):
    """The database or table does not exist."""

    status = 404
    reason = "not_found"


class PayloadTooLarge(ConnectorError):
    status = 413
    reason = "too_large"


class UnsupportedMediaType(ConnectorError):
    status = 415
    reason = "unsupported_media_type"


class ServiceUnavailable(ConnectorError):
    """Transient: throttling, Timestream 5xx, timeouts. Prometheus retries the whole request,
    which is safe because Timestream accepts an identical rewrite."""

    status = 503
    reason = "unavailable"


# Reasons of the errors `classify` makes, beyond each class's default.
THROTTLED = "throttled"
UNREACHABLE = "unreachable"
QUERY_FAILED = "query_failed"

# Which AWS error codes a retry can fix, and which mean the credentials or permissions are wrong.
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
TRANSIENT_CODES = THROTTLING_CODES | {
    "InternalServerException", "ServiceUnavailable", "ServiceUnavailableException",
    "RequestTimeout", "RequestTimeoutException",
    # A discovered endpoint that moved: the next attempt discovers again.
    "InvalidEndpointException",
    # A query cancelled by a concurrent change: running it again can succeed.
    "ConflictException",
}
FORBIDDEN_CODES = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
     "SignatureDoesNotMatch", "ExpiredTokenException", "InvalidClientTokenId",
     "MissingAuthenticationTokenException", "IncompleteSignature"}
)
REJECTED_RECORDS = "RejectedRecordsException"
# Timestream answers a query on a missing database or table with a ValidationException such as
# "Requested database 'abc' not found for identifier 'abc.tbl' at line 1:15".
_MISSING_RESOURCE = re.compile(
    r"not found for identifier|\b(database|table)\b[^.]*\b(does not exist|not found)", re.IGNORECASE
)
_MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class RejectedRecord:
    """One record of a WriteRecords call that Timestream refused while writing the others."""

    index: int
    reason: str


class TimestreamError(Exception):
    """An error answer from Timestream."""

    def __init__(
        self, code: str, message: str, http_status: int, rejected_records: tuple[RejectedRecord, ...] = ()
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.rejected_records = rejected_records


class TimestreamUnreachable(Exception):
    """No answer from Timestream: the connection failed, was closed, or timed out."""


def one_line(text: str) -> str:
    """`text` on one line, at most a few hundred characters (for error bodies and logs)."""
    return " ".join(str(text).split())[:_MAX_MESSAGE_CHARS]


def _error_code(raw: str) -> str:
    # AWS JSON 1.0 error types may carry a namespace ("com.amazonaws...#Code") or, in the
    # x-amzn-ErrorType header, a trailing URL ("Code:http://...").
    return raw.rpartition("#")[2].partition(":")[0].strip()


def parse_error_response(http_status: int, headers: dict[str, str], body: bytes) -> TimestreamError:
    """The TimestreamError of an AWS JSON 1.0 error answer (`__type`, `message`, `RejectedRecords`).

    Tolerates any body: a proxy's HTML page or an empty body still yields an error whose code
    says what is known (the status), so it is classified by status rather than crashing."""
    try:
        document = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    header_type = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), "")
    code = _error_code(str(document.get("__type") or header_type or "")) or f"HTTP{http_status}"
    message = document.get("message") or document.get("Message") or ""
    rejected = []
    for entry in document.get("RejectedRecords") or ():
        if isinstance(entry, dict) and isinstance(entry.get("RecordIndex"), int):
            rejected.append(RejectedRecord(entry["RecordIndex"], str(entry.get("Reason", ""))))
    return TimestreamError(code, one_line(str(message)), http_status, tuple(rejected))


def from_botocore(error: Exception) -> Exception:
    """The typed equivalent of an exception raised by a botocore client call, or `error`
    itself when it is not one of botocore's (a bug, to be raised as is)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        rejected = tuple(
            RejectedRecord(entry.get("RecordIndex", -1), str(entry.get("Reason", "")))
            for entry in error.response.get("RejectedRecords", ())
        )
        return TimestreamError(
            details.get("Code", "") or f"HTTP{status}", one_line(details.get("Message", "")), status, rejected
        )
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return Forbidden("no usable AWS credentials for Timestream")
    if isinstance(error, BotoCoreError):
        return TimestreamUnreachable(f"{type(error).__name__}: {error}")
    return error


def classify(error: Exception, where: str = "Timestream") -> ConnectorError | None:
    """The connector's error for any Timestream failure, or None when `error` is not one.

    `where` names the database and table for the message. Throttling, 5xx and no answer are
    transient (503: Prometheus retries); refused credentials 403, with the code but never AWS's
    text; a missing database or table 404; anything else Timestream refuses 400."""
    error = from_botocore(error)
    if isinstance(error, ConnectorError):
        return error
    if isinstance(error, TimestreamUnreachable):
        detail = one_line(str(error))
        return ServiceUnavailable(f"Timestream did not answer, retry later ({detail})", UNREACHABLE)
    if not isinstance(error, TimestreamError):
        return None
    code, status = error.code, error.http_status
    detail = f"{code}: {error.message}" if error.message else code
    if code in TRANSIENT_CODES or status >= 500:
        reason = THROTTLED if code in THROTTLING_CODES else ServiceUnavailable.reason
        message = f"Timestream is busy or unavailable on {where}, retry later ({detail})"
        return ServiceUnavailable(message, reason)
    if code in FORBIDDEN_CODES or status == 403:
        return Forbidden(f"AWS refused the credentials or the action on {where} ({code})")
    if code == "ResourceNotFoundException" or status == 404 or (
        code == "ValidationException" and _MISSING_RESOURCE.search(error.message)
    ):
        return NotFound(f"Timestream database or table {where} does not exist ({detail})")
    if code == "QueryExecutionException":
        return BadRequest(
            f"Timestream could not run the query on {where}, narrow the query ({detail})", QUERY_FAILED
        )
    return BadRequest(f"Timestream refused the request on {where} ({detail})")
