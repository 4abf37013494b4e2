import pytest
import snappy
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.codec import (
    WRITE_V1,
    WRITE_V2,
    check_read_headers,
    declared_length,
    decode_write_request,
    decompress,
    negotiate_write,
    parse_media_type,
)
from chalicelib.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from chalicelib.prompb.remote_write_v2_pb2 import Request
from tests.helpers import encode, now_ms, write_request

LIMIT = 32 * 1024 * 1024
V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


# -- Content-Type: which message (Remote-Write 2.0 spec, "Content-Type"; RFC 9110 8.3) ----------

@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        # the three values the spec lets a sender use
        ("application/x-protobuf", WRITE_V1),
        ("application/x-protobuf;proto=prometheus.WriteRequest", WRITE_V1),
        (V2_TYPE, WRITE_V2),
        # no Content-Type at all: 1.0, as Prometheus's own receiver assumes
        (None, WRITE_V1),
        ("", WRITE_V1),
        ("   ", WRITE_V1),
        # type, subtype and parameter names are case-insensitive
        ("Application/X-Protobuf", WRITE_V1),
        ("APPLICATION/X-PROTOBUF;PROTO=io.prometheus.write.v2.Request", WRITE_V2),
        # optional whitespace around ";" and around the whole value
        ("application/x-protobuf ; proto=io.prometheus.write.v2.Request", WRITE_V2),
        ("application/x-protobuf;\tproto=io.prometheus.write.v2.Request ", WRITE_V2),
        ("  application/x-protobuf", WRITE_V1),
        # a quoted-string value equals the same token, quoted-pairs unescaped
        ('application/x-protobuf;proto="io.prometheus.write.v2.Request"', WRITE_V2),
        ('application/x-protobuf;proto="io.prometheus.write.v2.\\Request"', WRITE_V2),
        # other parameters are not this protocol's business; empty parameters are allowed
        ("application/x-protobuf;charset=utf-8;proto=io.prometheus.write.v2.Request", WRITE_V2),
        ("application/x-protobuf;;proto=prometheus.WriteRequest;", WRITE_V1),
        ("application/x-protobuf;charset=utf-8", WRITE_V1),
        # the same message named twice is still one message
        (V2_TYPE + ";proto=io.prometheus.write.v2.Request", WRITE_V2),
    ],
)
def test_content_type_selects_the_message(content_type, message):
    assert negotiate_write(content_type, "snappy") == message


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json", "image/png", "text/plain", "application/octet-stream",
        "application/x-protobuf+json", "application/protobuf", "application/*", "*/*",
        # a protobuf message this endpoint does not speak
        "application/x-protobuf;proto=prometheus.ReadRequest",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        "application/x-protobuf;proto=",
        # message names are case-sensitive (protobuf names are, and Prometheus compares exactly)
        "application/x-protobuf;proto=io.prometheus.write.v2.request",
        "application/x-protobuf;proto=Prometheus.WriteRequest",
        # two different messages: ambiguous
        "application/x-protobuf;proto=prometheus.WriteRequest;proto=io.prometheus.write.v2.Request",
        # not a media type (RFC 9110: no whitespace around "=", parameters are name=value)
        "application/x-protobuf;proto", "application/x-protobuf; proto = io.prometheus.write.v2.Request",
        "application/x-protobuf proto=io.prometheus.write.v2.Request", "application", "/x-protobuf",
        'application/x-protobuf;proto="io.prometheus.write.v2.Request', "application/x-protobuf,text/plain",
    ],
)
def test_any_other_type_or_message_is_415_naming_what_is_supported(content_type):
    with pytest.raises(UnsupportedMediaType) as refused:
        negotiate_write(content_type, "snappy")
    message = refused.value.message
    assert "application/x-protobuf;proto=io.prometheus.write.v2.Request (remote write 2.0)" in message
    assert "proto=prometheus.WriteRequest (remote write 1.0)" in message
    assert "\n" not in message


def test_a_long_content_type_is_echoed_cut_short():
    with pytest.raises(UnsupportedMediaType) as refused:
        negotiate_write("text/" + "x" * 5000, "snappy")
    assert len(refused.value.message) < 400


@given(st.text(max_size=80))
def test_any_content_type_is_negotiated_or_refused_with_415(content_type):
    try:
        assert negotiate_write(content_type, "snappy") in (WRITE_V1, WRITE_V2)
    except UnsupportedMediaType as refused:
        assert refused.status == 415


@given(
    st.sampled_from(["application/x-protobuf", "APPLICATION/x-Protobuf"]),
    st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
                       st.from_regex(r"[A-Za-z0-9.]{1,12}", fullmatch=True)), max_size=4),
    st.booleans(),
)
def test_parameters_parse_whether_quoted_or_not(media_type, parameters, quoted):
    text = media_type + "".join(f';{name}="{value}"' if quoted else f";{name}={value}" for name, value in parameters)
    assert parse_media_type(text) == ("application/x-protobuf", parameters)


# -- Content-Encoding ----------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["snappy", "SNAPPY", " Snappy ", None, "", "  "])
def test_snappy_or_no_encoding_is_accepted(encoding):
    # Some clients (npm prometheus-remote-write) send snappy bodies without the header;
    # Prometheus's receiver takes them. A body that is not snappy is then a 400 (below).
    assert negotiate_write(V2_TYPE, encoding) == WRITE_V2


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd", "identity", "snappy-framed", "snappy, gzip", "br"])
def test_any_other_encoding_is_415(encoding):
    with pytest.raises(UnsupportedMediaType, match="Content-Encoding must be snappy"):
        negotiate_write("application/x-protobuf", encoding)


def test_without_content_encoding_a_body_that_is_not_snappy_is_a_400():
    message = negotiate_write("application/x-protobuf", None)
    with pytest.raises(BadRequest, match="snappy"):
        decode_write_request(write_request([([("__name__", "up")], [(1.0, 1)])]).SerializeToString(), message, LIMIT)


# -- remote read keeps its own, strict, contract ---------------------------------------------------

def test_read_accepts_protobuf_with_snappy_only():
    check_read_headers("application/x-protobuf", "snappy")
    check_read_headers("Application/X-Protobuf;proto=prometheus.ReadRequest", "SNAPPY")
    for content_type, encoding in [("application/json", "snappy"), (None, "snappy"), ("application/x-protobuf", None),
                                   ("application/x-protobuf", "gzip"), (V2_TYPE, "snappy")]:
        with pytest.raises(UnsupportedMediaType):
            check_read_headers(content_type, encoding)


# -- snappy and size ------------------------------------------------------------------------------

@given(st.binary(max_size=4096))
def test_declared_length_matches_what_snappy_writes(data):
    assert declared_length(snappy.compress(data)) == len(data)


def test_oversize_body_is_refused_from_the_header_before_decompressing():
    # A header claiming 64 MiB followed by garbage: decompressing it would fail, so reaching
    # PayloadTooLarge proves the decision came from the header alone.
    body = bytes([0x80, 0x80, 0x80, 0x20]) + b"\xff" * 16
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        decompress(body, LIMIT)


def test_body_exactly_at_the_limit_is_accepted():
    data = b"a" * 4096
    assert decompress(snappy.compress(data), 4096) == data
    with pytest.raises(PayloadTooLarge):
        decompress(snappy.compress(data), 4095)


@pytest.mark.parametrize(
    "body",
    [b"\x80\x80\x80\x80\x80\x80", b"\xff\xff\xff\xff\x7f", b"\x05abc", b"not snappy at all"],
    ids=["unterminated-varint", "over-32-bits", "truncated", "plain-text"],
)
def test_bodies_that_are_not_snappy_blocks_are_bad_requests(body):
    with pytest.raises(BadRequest, match="snappy"):
        decompress(body, LIMIT)


def test_empty_body_is_a_bad_request():
    with pytest.raises(BadRequest, match="empty body"):
        decompress(b"", LIMIT)


# -- protobuf -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "name"), [(WRITE_V1, "WriteRequest"), (WRITE_V2, WRITE_V2)])
def test_snappy_wrapping_invalid_protobuf_is_a_bad_request_naming_the_message(message, name):
    with pytest.raises(BadRequest, match=f"protobuf {name}"):
        decode_write_request(snappy.compress(b"\x0a\xff\xff"), message, LIMIT)


def test_invalid_utf8_in_a_2_0_symbol_is_a_bad_request():
    # field 4 (symbols), length 2, bytes that are not UTF-8
    with pytest.raises(BadRequest, match="protobuf"):
        decode_write_request(snappy.compress(b"\x22\x02\xc3\x28"), WRITE_V2, LIMIT)


def test_valid_requests_round_trip():
    request = write_request([([("__name__", "up"), ("job", "a")], [(1.5, now_ms())])])
    decoded = decode_write_request(encode(request), WRITE_V1, LIMIT)
    assert decoded.SerializeToString() == request.SerializeToString()
    v2 = Request(symbols=["", "__name__", "up"])
    v2.timeseries.add(labels_refs=[1, 2]).samples.add(value=1.5, timestamp=7)
    assert decode_write_request(snappy.compress(v2.SerializeToString()), WRITE_V2, LIMIT) == v2


def test_a_refused_content_type_is_quoted_back_truncated():
    with pytest.raises(UnsupportedMediaType) as raised:
        negotiate_write("text/plain; charset=utf-8", "snappy")
    assert "'text/plain; charset=utf-8'" in raised.value.message
    with pytest.raises(UnsupportedMediaType) as raised:
        negotiate_write("text/" + "x" * 500, "snappy")
    assert len(raised.value.message) < 400 and "..." in raised.value.message


# -- a request sent to the other endpoint names the right one ---------------------------------------

def test_a_read_message_type_on_write_is_415_naming_read():
    with pytest.raises(UnsupportedMediaType, match="remote read goes to POST /read"):
        negotiate_write("application/x-protobuf;proto=prometheus.ReadRequest", "snappy")


@pytest.mark.parametrize("message", [WRITE_V1, WRITE_V2])
def test_a_write_message_type_on_read_is_415_naming_write(message):
    with pytest.raises(UnsupportedMediaType, match="remote write goes to POST /write"):
        check_read_headers(f"application/x-protobuf;proto={message}", "snappy")
