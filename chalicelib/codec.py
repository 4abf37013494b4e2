"""Remote write 1.0 request decoding: content negotiation, size limit, snappy, protobuf.

Order matters for cost: headers are checked first, then the uncompressed length declared in
the snappy block header, so an oversize body is refused before any memory is allocated for it.
"""

from __future__ import annotations

import snappy
from google.protobuf.message import DecodeError

from chalicelib.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from chalicelib.prompb.prometheus_remote_pb2 import ReadRequest, WriteRequestLabelBytes

PROTOBUF = "application/x-protobuf"
# Remote write 2.0 senders name the message in a `proto` parameter; 1.0 is the only one we speak.
WRITE_V1_MESSAGE = "prometheus.WriteRequest"


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    parts = (content_type or "").split(";")
    params = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].strip().lower(), params


def check_headers(content_type: str | None, content_encoding: str | None, message: str) -> None:
    """Refuse (415) anything but snappy-compressed protobuf carrying the expected message."""
    media_type, params = _media_type(content_type)
    if media_type != PROTOBUF:
        raise UnsupportedMediaType(f"Content-Type must be {PROTOBUF}, got {content_type or 'none'!r}")
    proto = params.get("proto")
    if proto is not None and proto != message:
        raise UnsupportedMediaType(
            f"unsupported protobuf message {proto!r}: this endpoint accepts {message} "
            "(for Prometheus remote write set protobuf_message: prometheus.WriteRequest)"
        )
    encoding = (content_encoding or "").strip().lower()
    if encoding != "snappy":
        raise UnsupportedMediaType(f"Content-Encoding must be snappy, got {content_encoding or 'none'!r}")


def declared_length(body: bytes) -> int:
    """The uncompressed length a snappy block declares in its leading varint (at most 32 bits)."""
    length = 0
    for index, byte in enumerate(body[:5]):
        length |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if length > 0xFFFFFFFF:
                break
            return length
    raise BadRequest("body is not snappy block format: bad length header")


def decompress(body: bytes, limit: int) -> bytes:
    """Decompress a snappy block, refusing (413) one that declares more than `limit` bytes."""
    if not body:
        raise BadRequest("empty body: expected a snappy-compressed protobuf message")
    size = declared_length(body)
    if size > limit:
        raise PayloadTooLarge(f"decompressed body would be {size} bytes, over the limit of {limit}")
    try:
        # The block format checks that the output matches the declared length, so the actual
        # size can never exceed what was checked above.
        return snappy.uncompress(body)
    except snappy.UncompressError:
        raise BadRequest("body is not snappy block format: it does not decompress") from None


def _parse(message_type: type, raw: bytes, name: str) -> object:
    message = message_type()
    try:
        message.ParseFromString(raw)
    except DecodeError:
        raise BadRequest(f"body is not a valid protobuf {name}") from None
    return message


def decode_write_request(
    body: bytes, content_type: str | None, content_encoding: str | None, limit: int
) -> WriteRequestLabelBytes:
    """The request as WriteRequestLabelBytes: the same message with each series' labels left
    serialised (records.SeriesCache parses them once per series)."""
    check_headers(content_type, content_encoding, WRITE_V1_MESSAGE)
    return _parse(WriteRequestLabelBytes, decompress(body, limit), "WriteRequest")


def decode_read_request(
    body: bytes, content_type: str | None, content_encoding: str | None, limit: int
) -> ReadRequest:
    check_headers(content_type, content_encoding, "prometheus.ReadRequest")
    return _parse(ReadRequest, decompress(body, limit), "ReadRequest")


def encode_response(message: object) -> bytes:
    """Serialise and snappy-compress (block format) a protobuf response."""
    return snappy.compress(message.SerializeToString())
