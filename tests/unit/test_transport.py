import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from chalicelib.transport import EndpointCache, HttpClient, WriteRecordsSender, discovery_url

BODY = b'{"DatabaseName":"prometheus","TableName":"metrics","Records":[]}'


class FakeTimestream(BaseHTTPRequestHandler):
    """Records each request; answers with the server's queued (status, body) or 200."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers), body))
        status, payload = self.server.answers.pop(0) if self.server.answers else (200, {"RecordsIngested": {}})
        if status == "hang":
            threading.Event().wait(payload)
            status, payload = 200, {}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_answer:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeTimestream)
    httpd.requests, httpd.answers, httpd.close_after_answer = [], [], False
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # clients that hang up are part of the tests
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


clients_made = []


def botocore_client():
    clients_made.append(1)
    return botocore.session.get_session().create_client(
        "timestream-write", region_name="eu-west-1", endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="AKIATESTEXAMPLE00001", aws_secret_access_key="secret",
    )


def make_sender(endpoint, endpoints=None, discovery=None, read_timeout=2.0):
    return WriteRecordsSender(
        Credentials("AKIATESTEXAMPLE00001", "secret"), "eu-west-1", endpoints or EndpointCache(endpoint),
        HttpClient(connect_timeout=1.0, read_timeout=read_timeout), botocore_client, discovery,
    )


def test_body_is_sent_as_is_and_signed_for_timestream(server):
    clients_made.clear()
    make_sender(url(server)).send(BODY)
    ((headers, body),) = server.requests
    assert body == BODY
    assert headers["X-Amz-Target"] == "Timestream_20181101.WriteRecords"
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATESTEXAMPLE00001/")
    assert "/eu-west-1/timestream/aws4_request" in headers["Authorization"]
    assert clients_made == [], "no botocore client is created on the happy path"


def test_connections_are_reused_across_calls(server):
    sender = make_sender(url(server))
    ports = set()
    original = FakeTimestream.do_POST

    def remember_port(handler):
        ports.add(handler.client_address[1])
        original(handler)

    FakeTimestream.do_POST = remember_port
    try:
        for _ in range(3):
            sender.send(BODY)
    finally:
        FakeTimestream.do_POST = original
    assert len(server.requests) == 3
    assert len(ports) == 1


def test_a_connection_closed_by_the_server_is_replaced_and_the_call_sent_again(server):
    server.close_after_answer = True
    sender = make_sender(url(server))
    for _ in range(3):
        sender.send(BODY)
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ThrottlingException"), (500, "InternalServerException"), (404, "ResourceNotFoundException"),
     (403, "AccessDeniedException"), (400, "ValidationException")],
)
def test_errors_raise_the_client_error_botocore_would(server, status, code):
    server.answers.append((status, {"__type": f"com.amazonaws.timestream.v20181101#{code}", "message": "why"}))
    with pytest.raises(ClientError) as raised:
        make_sender(url(server)).send(BODY)
    error = raised.value
    assert error.response["Error"] == {"Code": code, "Message": "why"}
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert type(error).__name__ == code


def test_rejected_records_carry_their_indexes_and_reasons(server):
    rejected = [{"RecordIndex": 4, "Reason": "version conflict", "ExistingVersion": 2}]
    server.answers.append((419, {"__type": "RejectedRecordsException", "message": "rejected",
                                 "RejectedRecords": rejected}))
    with pytest.raises(ClientError) as raised:
        make_sender(url(server)).send(BODY)
    assert raised.value.response["Error"]["Code"] == "RejectedRecordsException"
    assert raised.value.response["RejectedRecords"] == rejected


def test_unreachable_endpoint_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(EndpointConnectionError):
            make_sender(f"http://127.0.0.1:{port}").send(BODY)


def test_an_answer_slower_than_the_read_timeout_is_a_read_timeout(server):
    server.answers.append(("hang", 2))
    with pytest.raises(ReadTimeoutError):
        make_sender(url(server), read_timeout=0.3).send(BODY)


def test_a_server_that_hangs_up_on_a_new_connection_is_a_connection_error():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def hang_up():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionClosedError):
            make_sender(f"http://127.0.0.1:{listener.getsockname()[1]}").send(BODY)
    finally:
        listener.close()


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_endpoint_is_discovered_once_and_cached_for_the_period_timestream_gives():
    clock = Clock()
    endpoints = EndpointCache(None, clock=clock)
    answers = [{"Endpoints": [{"Address": "ingest-cell2.timestream.test", "CachePeriodInMinutes": 1}]},
               {"Endpoints": [{"Address": "ingest-cell3.timestream.test", "CachePeriodInMinutes": 1}]}]
    asked = []

    def discover():
        asked.append(1)
        return answers[len(asked) - 1]

    assert endpoints.get(discover) == "https://ingest-cell2.timestream.test"
    clock.now = 59
    assert endpoints.get(discover) == "https://ingest-cell2.timestream.test"
    clock.now = 61
    assert endpoints.get(discover) == "https://ingest-cell3.timestream.test"
    assert len(asked) == 2


def test_discovery_is_a_signed_describe_endpoints_call_and_its_answer_is_used(server):
    # Timestream answers a bare host name (used with https); a scheme, as here, is kept.
    server.answers.append((200, {"Endpoints": [{"Address": url(server), "CachePeriodInMinutes": 5}]}))
    make_sender(None, endpoints=EndpointCache(None), discovery=url(server)).send(BODY)
    (discovery, write) = server.requests
    assert discovery[0]["X-Amz-Target"] == "Timestream_20181101.DescribeEndpoints"
    assert discovery[0]["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert write[1] == BODY


def test_discovery_endpoints_follow_the_region_partition():
    assert discovery_url("us-east-1") == "https://ingest.timestream.us-east-1.amazonaws.com"
    assert discovery_url("cn-north-1") == "https://ingest.timestream.cn-north-1.amazonaws.com.cn"


def test_an_invalid_endpoint_answer_forces_rediscovery(server):
    endpoints = EndpointCache(None)
    endpoints._discovered, endpoints._expires = url(server), float("inf")
    server.answers.append((421, {"__type": "InvalidEndpointException", "message": "moved"}))
    with pytest.raises(ClientError):
        make_sender(None, endpoints=endpoints).send(BODY)
    assert endpoints._discovered is None


def test_a_configured_endpoint_turns_discovery_off():
    def discover():
        raise AssertionError("no discovery with a configured endpoint")

    assert EndpointCache("http://127.0.0.1:9202/").get(discover) == "http://127.0.0.1:9202"


def test_connections_disable_nagle_so_the_body_is_not_held_for_a_delayed_ack(server):
    http_client = HttpClient(connect_timeout=1.0, read_timeout=2.0)
    http_client.post(url(server) + "/", {"Content-Type": "application/x-amz-json-1.0"}, BODY)
    (connection,) = http_client._connections.open.values()
    assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
