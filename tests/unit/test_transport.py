import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
import pytest
import urllib3
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from chalicelib.transport import EndpointCache, WriteRecordsSender

BODY = b'{"DatabaseName":"prometheus","TableName":"metrics","Records":[]}'


class FakeTimestream(BaseHTTPRequestHandler):
    """Records each request; answers with the server's queued (status, body) or 200."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers), body))
        status, payload = self.server.answers.pop(0) if self.server.answers else (200, {"RecordsIngested": {}})
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeTimestream)
    httpd.requests, httpd.answers = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def make_client(endpoint="http://127.0.0.1:1"):
    return botocore.session.get_session().create_client(
        "timestream-write", region_name="eu-west-1", endpoint_url=endpoint,
        aws_access_key_id="AKIATESTEXAMPLE00001", aws_secret_access_key="secret",
    )


def make_sender(endpoint, endpoints=None, client=None):
    return WriteRecordsSender(
        client or make_client(endpoint), Credentials("AKIATESTEXAMPLE00001", "secret"), "eu-west-1",
        endpoints or EndpointCache(endpoint), urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=2)),
    )


def url(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_body_is_sent_as_is_and_signed_for_timestream(server):
    make_sender(url(server)).send(BODY)
    ((headers, body),) = server.requests
    assert body == BODY
    assert headers["X-Amz-Target"] == "Timestream_20181101.WriteRecords"
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    credential_scope = "Credential=AKIATESTEXAMPLE00001/"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 " + credential_scope)
    assert "/eu-west-1/timestream/aws4_request" in headers["Authorization"]


def test_connections_are_reused_across_calls(server):
    sender = make_sender(url(server))
    for _ in range(3):
        sender.send(BODY)
    assert len(server.requests) == 3
    pool = sender._pools.connection_from_url(url(server))
    assert pool.num_connections == 1


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
    with pytest.raises(EndpointConnectionError):
        make_sender("http://127.0.0.1:1").send(BODY)


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def discovery_answer(address, minutes=1):
    return {"Endpoints": [{"Address": address, "CachePeriodInMinutes": minutes}]}


def test_endpoint_is_discovered_once_and_cached_for_the_period_timestream_gives(server):
    client, clock = make_client(), Clock()
    endpoints = EndpointCache(None, clock=clock)
    address = url(server).removeprefix("http://")
    with Stubber(client) as stubber:
        stubber.add_response("describe_endpoints", discovery_answer("ingest-cell2.timestream.test"), {})
        stubber.add_response("describe_endpoints", discovery_answer(address), {})
        assert endpoints.get(client) == "https://ingest-cell2.timestream.test"
        clock.now = 59
        assert endpoints.get(client) == "https://ingest-cell2.timestream.test"
        clock.now = 61
        assert endpoints.get(client) == f"https://{address}"
        stubber.assert_no_pending_responses()


def test_an_invalid_endpoint_answer_forces_rediscovery(server):
    client = make_client()
    endpoints = EndpointCache(None)
    endpoints._discovered, endpoints._expires = url(server), float("inf")
    server.answers.append((421, {"__type": "InvalidEndpointException", "message": "moved"}))
    with pytest.raises(ClientError):
        make_sender(None, endpoints=endpoints, client=client).send(BODY)
    assert endpoints._discovered is None


def test_a_configured_endpoint_turns_discovery_off():
    client = make_client()
    with Stubber(client):  # any describe_endpoints call would fail: nothing is queued
        assert EndpointCache("http://127.0.0.1:9202/").get(client) == "http://127.0.0.1:9202"
