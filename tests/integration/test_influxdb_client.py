"""The InfluxDB HTTP client: error answers of every version typed with InfluxDB's own message,
a kept-alive connection the server dropped replaced once, no answer typed as unreachable."""

from __future__ import annotations

import socket

import pytest

from chalicelib.influxdb.client import (
    Endpoint,
    InfluxDBClient,
    InfluxDBError,
    InfluxDBUnreachable,
    error_message,
)
from tests.influxdb_standin import Answer, StandIn


@pytest.fixture
def standin():
    server = StandIn().start()
    yield server
    server.stop()


@pytest.mark.parametrize(("body", "headers", "expected"), [
    (b'{"error":"database not found: \\"x\\""}', {}, 'database not found: "x"'),            # 1.x, 3
    (b'{"code":"not found","message":"bucket \\"x\\" not found"}', {}, 'bucket "x" not found'),  # 2.x
    (b"", {"X-Influxdb-Error": "authorization failed"}, "authorization failed"),
    (b"<html><body>502 Bad Gateway</body></html>", {}, "HTTP 502"),                        # a proxy's page
    (b"plain\ntext", {}, "plain text"),
])
def test_error_messages_of_every_version_are_read_on_one_line(body, headers, expected):
    assert error_message(502, headers, body) == expected


def test_the_url_may_carry_a_port_and_a_path_prefix(standin):
    assert Endpoint.parse("https://h.example:8086/influx/") == Endpoint("https", "h.example", 8086, "/influx")
    assert Endpoint.parse("http://h.example").port == 80
    client = InfluxDBClient(standin.url + "/prefix", 1, 1, 1)
    client.write("db", b"m value=1 1\n", "Basic x")
    assert standin.requests[0].path == "/prefix/write"


def test_an_error_answer_is_typed_with_status_message_and_body(standin):
    standin.answer = lambda request: Answer.error(404, 'database not found: "db"')
    client = InfluxDBClient(standin.url, 1, 1, 1)
    with pytest.raises(InfluxDBError) as failed:
        client.write("db", b"m value=1 1\n", None)
    assert (failed.value.status, failed.value.message) == (404, 'database not found: "db"')
    assert "authorization" not in standin.requests[0].headers


def test_a_kept_alive_connection_the_server_dropped_is_replaced_once(standin):
    client = InfluxDBClient(standin.url, 1, 1, 1)
    client.write("db", b"m value=1 1\n", None)
    # The server closes an idle connection: the next call finds it dead and opens a new one.
    client._local.connection.sock.shutdown(socket.SHUT_RDWR)
    client.write("db", b"m value=2 2\n", None)
    assert [request.body for request in standin.writes()] == [b"m value=1 1\n", b"m value=2 2\n"]


def test_no_listener_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InfluxDBUnreachable, match="ConnectionRefused"):
        InfluxDBClient(f"http://127.0.0.1:{port}", 0.5, 0.5, 0.5).query("db", "SELECT 1", None)
