"""Remote write request decoding: content negotiation, size limit, snappy, protobuf.

Order matters for cost: headers are checked first, then the uncompressed length declared in
the snappy block header, so an oversize body is refused before any memory is allocated for it.

Both remote write messages arrive on the same endpoint; the Content-Type says which one a body
holds (Remote-Write 2.0 specification, "Content-Type"):

* `application/x-protobuf` alone, or with `proto=prometheus.WriteRequest`: 1.0;
* `application/x-protobuf;proto=io.prometheus.write.v2.Request`: 2.0;
* no Content-Type at all: 1.0, as Prometheus's own receiver assumes;
* anything else: 415, naming what is supported (a 2.0 sender may then fall back to 1.0).

A request sent to the other endpoint is refused with a 400 naming the right one, never answered
2xx: a remote write body parses as a ReadRequest (protobuf skips fields whose wire type does not
match, so each series reads as a query without matchers) and a ReadRequest as a WriteRequest of
series without labels or samples. Prometheus marks its requests with a version header, which
decides at once; the bodies are checked too, for senders that send no such header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import snappy
from google.protobuf.message import DecodeError

from chalicelib.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from chalicelib.prompb.prometheus_remote_pb2 import ReadRequest, WriteRequest, WriteRequestLabelBytes
from chalicelib.prompb.remote_write_v2_pb2 import Request as WriteRequestV2

PROTOBUF = "application/x-protobuf"
SNAPPY = "snappy"
# The fully qualified protobuf message names a sender may put in the `proto` parameter.
WRITE_V1 = "prometheus.WriteRequest"
WRITE_V2 = "io.prometheus.write.v2.Request"
READ_V1 = "prometheus.ReadRequest"
SUPPORTED_WRITE_TYPES = (
    f"{PROTOBUF} or {PROTOBUF};proto={WRITE_V1} (remote write 1.0), "
    f"{PROTOBUF};proto={WRITE_V2} (remote write 2.0)"
)

# Prometheus marks each request with the protocol it speaks (0.1.0 for remote read and write 1.0,
# 2.0.0 for write 2.0); other senders (vmagent, older clients) may send neither. As they come
# in a Chalice request's (case-insensitive, lower-cased) headers.
WRITE_VERSION_HEADER = "x-prometheus-remote-write-version"
READ_VERSION_HEADER = "x-prometheus-remote-read-version"
_GO_TO_WRITE = "remote write goes to POST /write, remote read to POST /read; nothing was read or stored"
_GO_TO_READ = "remote read goes to POST /read, remote write to POST /write; nothing was read or stored"

# Remote write 2.0 answers: what was written, per kind, on every response after negotiation.
SAMPLES_WRITTEN = "X-Prometheus-Remote-Write-Samples-Written"
HISTOGRAMS_WRITTEN = "X-Prometheus-Remote-Write-Histograms-Written"
EXEMPLARS_WRITTEN = "X-Prometheus-Remote-Write-Exemplars-Written"

# RFC 9110 section 5.6: token, quoted-string, optional whitespace; section 8.3.1: media-type.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_MEDIA_TYPE = re.compile(rf"[ \t]*({_TOKEN})/({_TOKEN})")
_PARAMETER = re.compile(rf"[ \t]*;[ \t]*(?:({_TOKEN})=({_TOKEN}|{_QUOTED}))?")
_END = re.compile(r"[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_ECHO_CHARS = 100


def parse_media_type(value: str) -> tuple[str, list[tuple[str, str]]] | None:
    """A Content-Type value -> ("type/subtype" in lower case, [(parameter name in lower case,
    value)]), or None when it is not a media type. Names are case-insensitive and values are
    not (RFC 9110 section 8.3.1); a quoted value is unquoted, so `proto="x"` equals `proto=x`.
    """
    match = _MEDIA_TYPE.match(value)
    if match is None:
        return None
    media_type = f"{match.group(1)}/{match.group(2)}".lower()
    parameters = []
    position = match.end()
    while (match := _PARAMETER.match(value, position)) is not None:
        position = match.end()
        name, raw = match.groups()
        if name is None:  # an empty parameter (";;" or a trailing ";") is allowed
            continue
        if raw.startswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        parameters.append((name.lower(), raw))
    if _END.fullmatch(value, position) is None:
        return None
    return media_type, parameters


def _echo(value: str) -> str:
    return repr(value if len(value) <= _ECHO_CHARS else value[:_ECHO_CHARS] + "...")


def _unsupported(what: str, supported: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"{what}: this endpoint accepts {supported}")


def _protobuf_message(content_type: str, supported: str) -> str | None:
    """The `proto` parameter of a protobuf Content-Type (None when absent); UnsupportedMediaType
    for anything that is not `application/x-protobuf` or names two different messages."""
    parsed = parse_media_type(content_type)
    if parsed is None or parsed[0] != PROTOBUF:
        raise _unsupported(f"unsupported Content-Type {_echo(content_type)}", supported)
    messages = {value for name, value in parsed[1] if name == "proto"}
    if len(messages) > 1:
        what = f"Content-Type {_echo(content_type)} names more than one protobuf message"
        raise _unsupported(what, supported)
    return messages.pop() if messages else None


def refuse_read_sent_to_write(headers: Mapping[str, str]) -> None:
    """BadRequest for a request its sender marks as a remote read: a remote_read URL that ends in
    /write. Answered before the body is looked at: a ReadRequest may parse as a WriteRequest."""
    if headers.get(READ_VERSION_HEADER) is not None:
        raise BadRequest(
            "this is a remote read request (it carries X-Prometheus-Remote-Read-Version), sent to "
            f"/write: {_GO_TO_READ}",
            reason="read_sent_to_write",
        )


def refuse_write_sent_to_read(headers: Mapping[str, str]) -> None:
    """BadRequest for a request its sender marks as a remote write: a remote_write URL that ends
    in /read. Its body may parse as a ReadRequest, and answering it would run a query per series
    and say 200 while the samples are lost."""
    if headers.get(WRITE_VERSION_HEADER) is not None:
        raise BadRequest(
            "this is a remote write request (it carries X-Prometheus-Remote-Write-Version), sent to "
            f"/read: {_GO_TO_WRITE}",
            reason="write_sent_to_read",
        )


def negotiate_write(content_type: str | None, content_encoding: str | None) -> str:
    """The message a remote write body holds (WRITE_V1 or WRITE_V2), from its headers; 415
    (UnsupportedMediaType) for a type, message or encoding this endpoint does not speak.

    A missing Content-Encoding is read as snappy: some clients send snappy bodies without the
    header, and Prometheus's own receiver accepts them. A body that is not snappy after all is
    a 400 when it is decompressed."""
    if content_type is not None and content_type.strip():
        message = _protobuf_message(content_type, SUPPORTED_WRITE_TYPES) or WRITE_V1
        if message not in (WRITE_V1, WRITE_V2):
            hint = f" ({_GO_TO_READ})" if message == READ_V1 else ""
            what = f"unsupported protobuf message {_echo(message)}{hint}"
            raise _unsupported(what, SUPPORTED_WRITE_TYPES)
    else:
        message = WRITE_V1
    _check_encoding(content_encoding, required=False)
    return message


def check_read_headers(content_type: str | None, content_encoding: str | None) -> None:
    """Refuse (415) anything but a snappy-compressed protobuf ReadRequest."""
    supported = f"{PROTOBUF} (remote read, proto={READ_V1})"
    message = _protobuf_message(content_type or "", supported)
    if message not in (None, READ_V1):
        hint = f" ({_GO_TO_WRITE})" if message in (WRITE_V1, WRITE_V2) else ""
        raise _unsupported(f"unsupported protobuf message {_echo(message)}{hint}", supported)
    _check_encoding(content_encoding, required=True)


def _check_encoding(content_encoding: str | None, *, required: bool) -> None:
    # Content codings are case-insensitive (RFC 9110 section 8.4.1).
    encoding = (content_encoding or "").strip()
    if encoding.lower() == SNAPPY or (not encoding and not required):
        return
    got = _echo(encoding) if encoding else "none"
    raise UnsupportedMediaType(f"Content-Encoding must be snappy (block format), got {got}")


def written_headers(samples: int, histograms: int, exemplars: int) -> Mapping[str, str]:
    """The 2.0 response headers saying how many of each kind were written."""
    return {
        SAMPLES_WRITTEN: str(samples), HISTOGRAMS_WRITTEN: str(histograms), EXEMPLARS_WRITTEN: str(exemplars)
    }


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


def decode_write_request(body: bytes, message: str, limit: int) -> WriteRequestLabelBytes | WriteRequestV2:
    """The body as the negotiated message. 1.0: WriteRequestLabelBytes, the same message with
    each series' labels left serialised (records.SeriesCache parses them once per series).
    2.0: the Request itself (its labels are already small integers)."""
    raw = decompress(body, limit)
    if message == WRITE_V2:
        request = _parse(WriteRequestV2, raw, WRITE_V2)
        if raw and not request.timeseries and not request.symbols:
            raise _other_version(
                f"not a remote write 2.0 request: none of its fields is one of {WRITE_V2}'s, as when a "
                f"1.0 WriteRequest is sent with Content-Type {PROTOBUF};proto={WRITE_V2}; send 1.0 as "
                f"{PROTOBUF}"
            )
        return request
    request = _parse(WriteRequestLabelBytes, raw, "WriteRequest")
    if raw and not request.timeseries and not WriteRequest.FromString(raw).metadata:
        raise _other_version(
            f"not a remote write 1.0 request: none of its fields is one of {WRITE_V1}'s, as when a 2.0 "
            f"request is sent without Content-Type {PROTOBUF};proto={WRITE_V2}"
        )
    _refuse_read_request_body(request)
    return request


def _other_version(message: str) -> BadRequest:
    """A body none of whose fields the negotiated message has: the other version's fields all
    have other numbers, so it parses as an empty request, which would be answered 2xx with
    nothing stored. Only looked for when the parsed request is empty (a metadata-only 1.0
    request is not: its metadata is read with the full message, which the label-bytes view
    lacks)."""
    return BadRequest(message, reason="wrong_protocol_version")


def _refuse_read_request_body(request: WriteRequestLabelBytes) -> None:
    """BadRequest for a ReadRequest body sent without the read header: its queries parse as
    series without labels or samples (their timestamps have the wrong wire type, their matchers
    read as exemplars, their hints as histograms). No sender writes such series, and one of them
    beside real series is refused on its own (missing_metric_name) while the rest is written; a
    request of nothing else is a read. Costs one look at the first series of a real write."""
    series = request.timeseries
    if series and all(not one.labels and not one.samples for one in series):
        raise BadRequest(
            f"not a remote write request: its {len(series)} series have no labels and no samples, as "
            f"when a remote read request is sent to /write: {_GO_TO_READ}",
            reason="read_sent_to_write",
        )


def decode_read_request(
    body: bytes, content_type: str | None, content_encoding: str | None, limit: int
) -> ReadRequest:
    """The body as a ReadRequest whose every query can be answered: checked whole before any
    query runs (each one is billed)."""
    check_read_headers(content_type, content_encoding)
    request = _parse(ReadRequest, decompress(body, limit), "ReadRequest")
    check_queries(request)
    return request


def check_queries(request: ReadRequest) -> None:
    """BadRequest for a request that is no remote read: without queries, or with a query without
    label matchers (PromQL has no selector without one, and a query without any would read the
    whole table) or with a matcher without a label name (no label has an empty name). These are
    also what a remote write body looks like parsed as a ReadRequest: its series read as queries
    without matchers (with exemplars, as matchers without a name), a metadata-only write as no
    query at all; the message says so."""
    if not request.queries:
        raise BadRequest(
            "not a remote read request: it holds no query (a metadata-only remote write sent to /read "
            f"reads this way): {_GO_TO_WRITE}",
            reason="invalid_read_request",
        )
    for number, query in enumerate(request.queries, start=1):
        if not query.matchers:
            problem = ("has no label matchers (a remote read query needs one; a remote write sent to "
                       "/read reads this way)")
        elif any(not matcher.name for matcher in query.matchers):
            problem = ("has a label matcher without a label name (a remote write with exemplars sent to "
                       "/read reads this way)")
        else:
            continue
        raise BadRequest(
            f"query {number} of {len(request.queries)} {problem}: {_GO_TO_WRITE}",
            reason="invalid_read_request",
        )


def encode_response(message: object) -> bytes:
    """Serialise and snappy-compress (block format) a protobuf response."""
    return snappy.compress(message.SerializeToString())
