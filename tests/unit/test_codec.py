import pytest
import snappy
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.codec import check_headers, declared_length, decode_write_request, decompress
from chalicelib.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from tests.helpers import encode, now_ms, write_request

LIMIT = 32 * 1024 * 1024
WRITE = "prometheus.WriteRequest"


def test_prometheus_content_headers_are_accepted():
    check_headers("application/x-protobuf", "snappy", WRITE)
    check_headers("application/x-protobuf;proto=prometheus.WriteRequest", "SNAPPY", WRITE)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "", None])
def test_other_content_types_are_unsupported_media(content_type):
    with pytest.raises(UnsupportedMediaType, match="Content-Type"):
        check_headers(content_type, "snappy", WRITE)


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "", None, "snappy-framed"])
def test_other_encodings_are_unsupported_media(encoding):
    with pytest.raises(UnsupportedMediaType, match="Content-Encoding"):
        check_headers("application/x-protobuf", encoding, WRITE)


def test_remote_write_2_message_is_unsupported_media_with_a_hint():
    with pytest.raises(UnsupportedMediaType, match="protobuf_message"):
        check_headers("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy", WRITE)


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


def test_snappy_wrapping_invalid_protobuf_is_a_bad_request():
    with pytest.raises(BadRequest, match="protobuf"):
        decode_write_request(snappy.compress(b"\x0a\xff\xff"), "application/x-protobuf", "snappy", LIMIT)


def test_valid_request_round_trips():
    request = write_request([([("__name__", "up"), ("job", "a")], [(1.5, now_ms())])])
    decoded = decode_write_request(encode(request), "application/x-protobuf", "snappy", LIMIT)
    assert decoded.SerializeToString() == request.SerializeToString()
