import datetime
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.errors import TimestreamError, TimestreamUnreachable
from chalicelib.liveanalytics.http_client import HttpClient
from chalicelib.liveanalytics.records import MappedSeries
from chalicelib.liveanalytics.sigv4 import SigV4Signer, signing_key
from chalicelib.liveanalytics.transport import USER_AGENT, EndpointCache, WriteRecordsSender, discovery_url
from chalicelib.liveanalytics.write_body import write_records_body

DEST = ("prometheus", "metrics")
RECORDS = [(MappedSeries(DEST, None, "up", (("job", "node"),)), "1.0", "1800000000000")]
BODY = write_records_body(*DEST, RECORDS)


class FakeTimestream(BaseHTTPRequestHandler):
    """Records each request; answers with the server's queued (status, body) or 200."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers), body))
        self.server.paths.append(self.path)
        self.server.ports.add(self.client_address[1])
        status, payload = self.server.answers.pop(0) if self.server.answers else (200, {"RecordsIngested": {}})
        if status == "hang":
            threading.Event().wait(payload)
            status, payload = 200, {}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
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
    httpd.requests, httpd.answers, httpd.paths, httpd.ports = [], [], [], set()
    httpd.close_after_answer = False
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # clients that hang up are part of the tests
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
                 "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def url(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


def make_sender(endpoint, endpoints=None, discovery=None, read_timeout=2.0):
    return WriteRecordsSender(
        Credentials("AKIATESTEXAMPLE00001", "secret"), "eu-west-1", endpoints or EndpointCache(endpoint),
        HttpClient(connect_timeout=1.0, read_timeout=read_timeout, max_connections=4), discovery,
    )


def send(sender):
    sender.write_records(*DEST, RECORDS)


def test_body_is_the_prebuilt_json_signed_for_timestream(server):
    send(make_sender(url(server)))
    ((headers, body),) = server.requests
    assert body == BODY
    assert headers["X-Amz-Target"] == "Timestream_20181101.WriteRecords"
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATESTEXAMPLE00001/")
    assert "/eu-west-1/timestream/aws4_request" in headers["Authorization"]


def test_connections_are_reused_across_calls(server):
    sender = make_sender(url(server))
    for _ in range(3):
        send(sender)
    assert len(server.requests) == 3
    assert len(server.ports) == 1


def test_a_connection_closed_by_the_server_is_replaced_and_the_call_sent_again(server):
    server.close_after_answer = True
    sender = make_sender(url(server))
    for _ in range(3):
        send(sender)
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ThrottlingException"), (500, "InternalServerException"), (404, "ResourceNotFoundException"),
     (403, "AccessDeniedException"), (400, "ValidationException")],
)
def test_error_answers_are_parsed_into_typed_errors(server, status, code):
    server.answers.append((status, {"__type": f"com.amazonaws.timestream.v20181101#{code}", "message": "why"}))
    with pytest.raises(TimestreamError) as raised:
        send(make_sender(url(server)))
    error = raised.value
    assert (error.code, error.message, error.http_status, error.rejected_records) == (code, "why", status, ())


def test_an_error_body_that_is_not_json_still_raises_a_typed_error_with_its_status(server):
    server.answers.append((502, b"<html>Bad Gateway</html>"))
    with pytest.raises(TimestreamError) as raised:
        send(make_sender(url(server)))
    assert (raised.value.code, raised.value.http_status) == ("HTTP502", 502)


def test_rejected_records_carry_their_indexes_and_reasons(server):
    rejected = [{"RecordIndex": 4, "Reason": "version conflict", "ExistingVersion": 2}]
    server.answers.append((419, {"__type": "RejectedRecordsException", "message": "rejected",
                                 "RejectedRecords": rejected}))
    with pytest.raises(TimestreamError) as raised:
        send(make_sender(url(server)))
    assert raised.value.code == "RejectedRecordsException"
    assert [(r.index, r.reason) for r in raised.value.rejected_records] == [(4, "version conflict")]


def test_unreachable_endpoint_is_timestream_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(TimestreamUnreachable):
            send(make_sender(f"http://127.0.0.1:{port}"))


def test_an_answer_slower_than_the_read_timeout_is_timestream_unreachable(server):
    server.answers.append(("hang", 2))
    with pytest.raises(TimestreamUnreachable, match="ReadTimeout"):
        send(make_sender(url(server), read_timeout=0.3))


def test_a_server_that_hangs_up_on_a_new_connection_is_timestream_unreachable():
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
        with pytest.raises(TimestreamUnreachable):
            send(make_sender(f"http://127.0.0.1:{listener.getsockname()[1]}"))
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
    send(make_sender(None, endpoints=EndpointCache(None), discovery=url(server)))
    (discovery, write) = server.requests
    assert discovery[0]["X-Amz-Target"] == "Timestream_20181101.DescribeEndpoints"
    assert discovery[0]["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert discovery[1] == b"{}"  # DescribeEndpoints takes an empty JSON object
    assert write[1] == BODY


def test_discovery_endpoints_follow_the_region_partition():
    assert discovery_url("us-east-1") == "https://ingest.timestream.us-east-1.amazonaws.com"
    assert discovery_url("cn-north-1") == "https://ingest.timestream.cn-north-1.amazonaws.com.cn"


def test_an_invalid_endpoint_answer_forces_rediscovery(server):
    endpoints = EndpointCache(None)
    endpoints._discovered, endpoints._expires = url(server), float("inf")
    server.answers.append((421, {"__type": "InvalidEndpointException", "message": "moved"}))
    with pytest.raises(TimestreamError):
        send(make_sender(None, endpoints=endpoints))
    assert endpoints._discovered is None


def test_a_configured_endpoint_turns_discovery_off():
    def discover():
        raise AssertionError("no discovery with a configured endpoint")

    assert EndpointCache("http://127.0.0.1:9202/").get(discover) == "http://127.0.0.1:9202"


def test_connections_disable_nagle_so_the_body_is_not_held_for_a_delayed_ack(server):
    http = HttpClient(connect_timeout=1.0, read_timeout=2.0, max_connections=1)
    send(WriteRecordsSender(Credentials("AKIATESTEXAMPLE00001", "s"), "eu-west-1", EndpointCache(url(server)), http))
    (connection,) = http._connections.open.values()
    assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_proxied_endpoint_goes_through_botocore_with_nagle_disabled_too(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", url(server))
    http = HttpClient(connect_timeout=1.0, read_timeout=2.0, max_connections=1)
    endpoint = "http://timestream.example.invalid:8443"
    send(WriteRecordsSender(Credentials("AKIATESTEXAMPLE00001", "s"), "eu-west-1", EndpointCache(endpoint), http))
    assert http._connections.open == {}, "no direct connection for a proxied endpoint"
    pool = http._proxied[endpoint]._get_proxy_manager(url(server)).connection_from_url(endpoint)
    (connection,) = [c for c in pool.pool.queue if c is not None]
    assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_an_http_proxy_from_the_environment_carries_the_calls(server, monkeypatch):
    # The "proxy" is the fake server: a proxied plain-HTTP request names the absolute URL.
    monkeypatch.setenv("HTTP_PROXY", url(server))
    send(make_sender("http://timestream.example.invalid:8443"))
    assert server.paths == ["http://timestream.example.invalid:8443/"]


def test_no_proxy_sends_straight_to_the_endpoint(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    send(make_sender(url(server)))
    assert server.paths == ["/"]


def test_aws_ca_bundle_decides_which_certificates_are_trusted(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    http = HttpClient(connect_timeout=1.0, read_timeout=1.0, max_connections=1)
    assert http._session_if_proxied("https://x.invalid")._verify == str(bundle)
    assert http._ca_bundle == str(bundle)


def test_temporary_credentials_send_their_session_token_signed(server):
    credentials = Credentials("ASIATESTEXAMPLE00001", "secret", "session-token-value")
    sender = WriteRecordsSender(credentials, "eu-west-1", EndpointCache(url(server)),
                                HttpClient(connect_timeout=1.0, read_timeout=1.0, max_connections=1))
    send(sender)
    ((headers, _),) = server.requests
    assert headers["X-Amz-Security-Token"] == "session-token-value"
    assert "x-amz-security-token" in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]


def test_every_call_names_the_connector_after_botocore_in_its_user_agent(server):
    send(make_sender(url(server)))
    ((headers, _),) = server.requests
    botocore_part, _, connector_part = headers["User-Agent"].rpartition(" ")
    assert botocore_part.startswith("Botocore/")
    assert connector_part.startswith("prometheus-timestream/")


def _self_signed_certificate(directory):
    """A certificate for 127.0.0.1 and its key, as PEM files (the CA is the certificate itself)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local timestream")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_tls_endpoint_is_trusted_exactly_when_aws_ca_bundle_holds_its_ca(server, monkeypatch, tmp_path):
    import ssl

    cert, key = _self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    endpoint = f"https://127.0.0.1:{server.server_address[1]}"
    with pytest.raises(TimestreamUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        send(make_sender(endpoint))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    send(make_sender(endpoint))
    assert len(server.requests) == 1


def test_a_connection_that_timed_out_is_never_reused_for_the_next_call(server):
    # The late answer to the timed-out call must not be read as the next call's answer.
    server.answers.extend([("hang", 1.0), (400, {"__type": "ThrottlingException", "message": "slow down"})])
    sender = make_sender(url(server), read_timeout=0.3)
    with pytest.raises(TimestreamUnreachable):
        send(sender)
    with pytest.raises(TimestreamError) as raised:
        send(sender)
    assert raised.value.code == "ThrottlingException"


def test_an_https_endpoint_without_a_port_is_reached_on_443(monkeypatch):
    http = HttpClient(connect_timeout=1.0, read_timeout=1.0, max_connections=1)
    reached = []

    def connection(key):
        reached.append(key)
        raise OSError("not connecting in a unit test")

    monkeypatch.setattr(http, "_connection", connection)
    with pytest.raises(TimestreamUnreachable):
        http._post_direct("https://ingest-cell1.timestream.us-east-1.amazonaws.com/", {}, b"{}")
    assert reached == [("https", "ingest-cell1.timestream.us-east-1.amazonaws.com", 443)]


def test_an_unreachable_proxy_is_timestream_unreachable_naming_what_failed(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(TimestreamUnreachable, match="Error"):
        send(make_sender("http://timestream.example.invalid:8443"))


# -- SigV4: the connector's signer against botocore's --------------------------------------------

_key_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
_hosts = st.sampled_from(["ingest-cell2.timestream.eu-west-1.amazonaws.com", "127.0.0.1", "localhost",
                          "vpce-0abc.ingest.timestream.us-east-1.vpce.amazonaws.com", "[::1]", "Example.COM"])


@settings(max_examples=200, deadline=None)
@given(
    access_key=_key_text, secret=_key_text, token=st.one_of(st.none(), _key_text, st.just("a  b\tc")),
    region=st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1", "ap-southeast-2"]),
    service=st.sampled_from(["timestream", "ingest.timestream"]),
    scheme=st.sampled_from(["http", "https"]), host=_hosts,
    port=st.one_of(st.none(), st.sampled_from([80, 443, 8443, 9202])),
    path=st.sampled_from(["/", "/prefix/", "/a b/", "/a/../b/", "/~user/x/"]),
    target=st.sampled_from(["Timestream_20181101.WriteRecords", "Timestream_20181101.DescribeEndpoints"]),
    body=st.binary(max_size=300),
    moment=st.integers(min_value=0, max_value=4_102_444_799),
)
def test_the_signer_signs_exactly_as_botocore_sigv4auth(access_key, secret, token, region, service, scheme,
                                                        host, port, path, target, body, moment):
    url = f"{scheme}://{host}{f':{port}' if port else ''}{path}"
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target, "User-Agent": USER_AGENT}
    credentials = Credentials(access_key, secret, token)
    ours = SigV4Signer(service, region, clock=lambda: moment).headers(credentials, url, headers, body)

    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(credentials, service, region).add_auth(request)
    assert ours == dict(request.headers.items())


def test_a_signing_key_is_derived_once_per_secret_day_region_and_service():
    key = signing_key("secret-a", "20261203", "eu-west-1", "timestream")
    assert signing_key("secret-a", "20261203", "eu-west-1", "timestream") is key
    others = {signing_key("secret-b", "20261203", "eu-west-1", "timestream"),
              signing_key("secret-a", "20261204", "eu-west-1", "timestream"),
              signing_key("secret-a", "20261203", "us-east-1", "timestream"),
              signing_key("secret-a", "20261203", "eu-west-1", "timestream-query")}
    assert key not in others and len(others) == 4


def test_calls_are_signed_for_the_day_they_are_sent_in(server):
    # A process outlives midnight: the key of the new day signs, not the kept one.
    sender = make_sender(url(server))
    for moment in (1_796_342_399, 1_796_342_400):  # 2026-12-03 23:59:59 and 2026-12-04 00:00:00 UTC
        sender._signer._clock = lambda moment=moment: moment
        send(sender)
    scopes = [headers["Authorization"].split("Credential=")[1].split(",")[0] for headers, _ in server.requests]
    assert [scope.split("/")[1] for scope in scopes] == ["20261203", "20261204"]


# -- HTTP/1.1 answers as any server may send them ------------------------------------------------


class RawServer:
    """Answers each request with the next of `answers` (raw bytes), counting connections."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.connections = 0
        self.requests = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self):
        while self.answers:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection):
        with connection:
            buffer = b""
            while self.answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                answer = self.answers.pop(0)
                connection.sendall(answer)
                if b"Connection: close" in answer or answer.startswith(b"HTTP/1.0") or (
                        b"Length" not in answer and b"chunked" not in answer):
                    return

    def close(self):
        self.listener.close()


def http_post(client, server, body=b"{}"):
    return client.post(server.url, {"Content-Type": "application/x-amz-json-1.0"}, body)


@pytest.fixture
def client():
    return HttpClient(connect_timeout=1.0, read_timeout=2.0, max_connections=1)


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(client):
    chunked = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = RawServer([chunked, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    try:
        status, headers, data = http_post(client, server)
        assert (status, headers["Content-Type"], data) == (400, "application/x-amz-json-1.0", b'{"a": 1}')
        assert http_post(client, server)[::2] == (200, b"{}")
        assert server.connections == 1
    finally:
        server.close()


def test_an_answer_without_a_length_is_read_to_the_close_and_the_connection_not_reused(client):
    server = RawServer([b"HTTP/1.1 200 OK\r\n\r\n{\"whole\": true}", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    try:
        assert http_post(client, server)[::2] == (200, b'{"whole": true}')
        assert http_post(client, server)[::2] == (200, b"{}")
        assert server.connections == 2
    finally:
        server.close()


@pytest.mark.parametrize("first", [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
                                   b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
def test_a_server_that_closes_after_its_answer_gets_the_next_call_on_a_new_connection(client, first):
    server = RawServer([first, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    try:
        assert http_post(client, server)[::2] == (200, b"{}")
        assert http_post(client, server)[::2] == (200, b"{}")
        assert server.connections == 2
    finally:
        server.close()


def test_interim_answers_are_skipped_and_the_request_is_one_post_with_its_length(client):
    server = RawServer([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    try:
        assert http_post(client, server, body=b'{"x": 1}')[::2] == (200, b"{}")
        (request,) = server.requests
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST / HTTP/1.1"
        assert set(lines[1:]) == {f"Host: 127.0.0.1:{server.listener.getsockname()[1]}".encode(),
                                  b"Content-Type: application/x-amz-json-1.0", b"Content-Length: 8"}
        assert body == b'{"x": 1}'
    finally:
        server.close()


def answer_once_and_close(answer):
    """A server that reads one request, sends `answer` and closes the connection; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        connection, _ = listener.accept()
        with connection, listener:
            connection.recv(65536)
            connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
                                    b"HTTP/1.1 200 OK\r\nContent-Le", b"garbage\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_a_cut_or_garbled_answer_is_timestream_unreachable(client, answer):
    with pytest.raises(TimestreamUnreachable, match="could not reach"):
        client.post(answer_once_and_close(answer), {}, b"{}")


def test_a_header_value_that_would_end_the_header_is_refused_before_sending(client):
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    try:
        with pytest.raises(ValueError, match="X-Amz-Security-Token"):
            client.post(server.url, {"X-Amz-Security-Token": "a\r\nX-Injected: 1"}, b"{}")
        assert server.requests == []
    finally:
        server.close()


# -- a request's calls sent together from one thread ----------------------------------------------


def calls_of(count):
    return [(*DEST, RECORDS) for _ in range(count)]


def test_calls_sent_together_say_for_each_call_what_timestream_answered(server):
    throttled = {"__type": "com.amazonaws.timestream.v20181101#ThrottlingException", "message": "slow"}
    server.answers.extend([(200, {}), (400, throttled), (200, {})])
    outcomes = make_sender(url(server)).write_records_many(calls_of(3), in_flight=1)
    assert [None if outcome is None else outcome.code for outcome in outcomes] == [None, "ThrottlingException", None]
    assert [body for _, body in server.requests] == [BODY] * 3


def test_calls_sent_together_keep_at_most_in_flight_waiting_and_reuse_their_connections(server):
    server.answers.extend([("hang", 0.2)] * 6)
    sender = make_sender(url(server))
    started = time.monotonic()
    assert sender.write_records_many(calls_of(6), in_flight=3) == [None] * 6
    # Two waves of three: about 0.4 s, not 0.2 (six at once) nor 1.2 (one by one).
    assert 0.35 < time.monotonic() - started < 1.0
    assert len(server.ports) == 3
    assert sender.write_records_many(calls_of(3), in_flight=3) == [None] * 3
    assert len(server.ports) == 3  # kept alive for the next request's calls


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_for_calls_sent_together(server):
    server.close_after_answer = True
    sender = make_sender(url(server))
    for _ in range(3):
        assert sender.write_records_many(calls_of(2), in_flight=2) == [None, None]
    assert len(server.requests) == 6


def test_a_late_answer_fails_only_its_own_call_when_calls_are_sent_together(server):
    server.answers.extend([(200, {}), ("hang", 1.0)])
    outcomes = make_sender(url(server), read_timeout=0.3).write_records_many(calls_of(2), in_flight=1)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], TimestreamUnreachable) and "ReadTimeout" in str(outcomes[1])


def test_an_unreachable_endpoint_fails_every_call_sent_together():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        outcomes = make_sender(f"http://127.0.0.1:{sock.getsockname()[1]}").write_records_many(calls_of(2), 2)
    assert all(isinstance(outcome, TimestreamUnreachable) for outcome in outcomes)


def test_calls_to_a_proxied_endpoint_are_not_sent_together(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", url(server))
    assert make_sender("http://timestream.example.invalid:8443").write_records_many(calls_of(2), 2) is None
