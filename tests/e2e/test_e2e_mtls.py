"""Mutual TLS in front of the connector, with the certificates and the Prometheus configuration of
docs/deploy.md (section 14).

The client CA and certificates are made by running docs/deploy.md's own `openssl` block (marked
`<!-- e2e: mtls-certs -->`); Prometheus 2.42 runs with docs/deploy.md's `remote_write`/`remote_read`
block (marked `<!-- e2e: mtls-prometheus -->`), changed only where a test must: the URLs point at
the local front, the key and file names at the test's, the routing labels at the test's table,
the queue is made fast, and `ca_file` names the test's private server CA (the guide says when it
is needed). The front is tests/e2e/tls_front.py: TLS 1.2+, CERT_REQUIRED against the client CA,
forwarding to `chalice local`; API Gateway's custom domain does this in a deployment.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .checks import settled
from .launcher import Launcher
from .procs import LOOPBACK, wait_until
from .senders import DATABASE_LABEL, FAST_QUEUE, TABLE_LABEL
from .stack import REPO, Connector
from .tls_front import FrontCounts, MutualTlsFront

DATABASE = "e2e"
TABLE = "mtls"
DOOR_TABLE = "mtls_door"  # one table per test: the session's moto keeps both copies of a re-created table
GUIDE = REPO / "docs" / "deploy.md"


def guide_block(marker: str) -> str:
    """The fenced block that follows `<!-- e2e: marker -->` in docs/deploy.md."""
    text = GUIDE.read_text()
    match = re.search(rf"<!-- e2e: {re.escape(marker)} -->\n```[a-z]*\n(.*?)\n```", text, re.DOTALL)
    assert match, f"docs/deploy.md has no block marked {marker}"
    return match.group(1)


def run_guide_openssl(directory: Path) -> Path:
    """Runs the guide's certificate commands in `directory` (bash: they use process substitution)."""
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["bash", "-c", guide_block("mtls-certs")], cwd=directory,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def make_server_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """Test only: a private CA and a certificate for 127.0.0.1 (what ACM gives the real domain)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = """
        set -euo pipefail
        openssl req -x509 -newkey rsa:2048 -sha256 -days 2 -noenc -subj "/CN=e2e server CA" \
            -keyout server-ca.key -out server-ca.pem \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
        openssl req -new -newkey rsa:2048 -sha256 -noenc -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial -days 2 \
            -sha256 -out server.crt -extfile <(printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n')
    """
    result = subprocess.run(["bash", "-c", script], cwd=directory, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory / "server-ca.pem", directory / "server.crt", directory / "server.key"


@pytest.fixture(scope="module")
def pki(log_root: Path) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian package openssl)", pytrace=False)
    root = log_root / "mtls-pki"
    good = run_guide_openssl(root / "clients")
    # The same commands elsewhere: a CA the front does not trust, with a certificate of its own.
    stranger = run_guide_openssl(root / "stranger")
    server_ca, server_cert, server_key = make_server_certificate(root / "server")
    return {
        "client_ca": good / "client-ca.pem", "client_cert": good / "client.crt", "client_key": good / "client.key",
        "stranger_cert": stranger / "client.crt", "stranger_key": stranger / "client.key",
        "server_ca": server_ca, "server_cert": server_cert, "server_key": server_key,
    }


def start_front(launcher: Launcher, pki: dict[str, Path], table: str) -> tuple[MutualTlsFront, Connector]:
    """The connector (reads default to `table`) behind a front that trusts the client CA."""
    launcher.moto.create_table(DATABASE, table)
    timestream = launcher.timestream_proxy()  # merges CommonAttributes into what moto stores, as Timestream does
    connector = launcher.connector(timestream.url, TIMESTREAM_QUERY_ENDPOINT=timestream.url,
                                   DEFAULT_DATABASE=DATABASE, DEFAULT_TABLE=table)
    front = launcher.tls_front(connector.port, pki["server_cert"], pki["server_key"], pki["client_ca"])
    return front, connector


def https_get(front: MutualTlsFront, pki: dict[str, Path], cert: Path | None, key: Path | None) -> bytes:
    """GET / through the front with Python's TLS client; what came back (b"" when refused)."""
    context = ssl.create_default_context(cafile=str(pki["server_ca"]))
    if cert is not None:
        context.load_cert_chain(cert, key)
    received = b""
    try:
        with socket.create_connection((LOOPBACK, front.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                while chunk := tls.recv(65536):
                    received += chunk
    except (ssl.SSLError, OSError):
        pass  # TLS 1.2 fails the handshake itself; TLS 1.3 the first read after it
    return received


def test_only_a_certificate_from_the_truststore_ca_gets_through_the_front(launcher: Launcher, pki: dict[str, Path]) -> None:
    front, _ = start_front(launcher, pki, DOOR_TABLE)
    assert https_get(front, pki, None, None) == b""
    assert https_get(front, pki, pki["stranger_cert"], pki["stranger_key"]) == b""
    # The client may see the refusal before the front's thread has counted it.
    wait_until("the front to count two refusals", lambda: front.counts().refused == 2, timeout=10)
    assert front.counts().accepted == 0, front.counts()
    answer = https_get(front, pki, pki["client_cert"], pki["client_key"])
    # Through the door, the connector itself answers: its 404 naming /write and /read.
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b"/write" in answer
    assert front.counts() == FrontCounts(1, 2, front.counts().refusals)


def guide_prometheus_config(front: MutualTlsFront, pki: dict[str, Path], cert: Path, key: Path,
                            username: str, password_file: Path) -> dict:
    """The guide's remote_write/remote_read block, pointed at the test's front, files and table."""
    config = yaml.safe_load(guide_block("mtls-prometheus"))
    for section, path in (("remote_write", "/write"), ("remote_read", "/read")):
        (block,) = config[section]
        assert block["url"].startswith("https://") and block["url"].endswith(path)
        block["url"] = front.url + path
        block["basic_auth"] = {"username": username, "password_file": str(password_file)}
        tls = block["tls_config"]
        assert set(tls) == {"cert_file", "key_file", "min_version"}, tls
        tls.update(cert_file=str(cert), key_file=str(key), ca_file=str(pki["server_ca"]))
    (write,) = config["remote_write"]
    for relabel in write["write_relabel_configs"]:
        relabel["replacement"] = {DATABASE_LABEL: DATABASE, TABLE_LABEL: TABLE}[relabel["target_label"]]
    write["queue_config"] = {**write["queue_config"], **FAST_QUEUE}
    write["remote_timeout"] = "5s"
    return config


def test_prometheus_with_the_guides_tls_config_loses_nothing_while_its_certificate_is_refused(
    launcher: Launcher, pki: dict[str, Path]
) -> None:
    front, connector = start_front(launcher, pki, TABLE)
    prometheus = launcher.prometheus()
    tls_dir = prometheus.workdir / "tls"
    tls_dir.mkdir(exist_ok=True)
    cert, key = tls_dir / "client.crt", tls_dir / "client.key"
    # First a certificate the truststore's CA did not sign: every handshake is refused.
    shutil.copy(pki["stranger_cert"], cert)
    shutil.copy(pki["stranger_key"], key)
    password_file = prometheus.workdir / "timestream-secret"
    password_file.write_text(launcher.aws_key.secret_access_key)
    config = guide_prometheus_config(front, pki, cert, key, launcher.aws_key.access_key_id, password_file)
    prometheus.write_config(scrape_configs=[prometheus.self_scrape("prometheus")],
                            remote_write=config["remote_write"], remote_read=config["remote_read"])
    remote_url = config["remote_write"][0]["url"]

    def metric(name: str) -> float:
        return prometheus.remote_metric(f"prometheus_remote_storage_{name}", remote_url)

    start_ms = int(time.time() * 1000)
    prometheus.start()
    wait_until("Prometheus's batches refused at the TLS handshake", lambda: front.counts().refused >= 3, timeout=40)
    wait_until("Prometheus to count retries", lambda: metric("samples_retried_total") > 0, timeout=20)
    time.sleep(3)  # a few more refused attempts, samples piling up in the WAL
    assert front.counts().accepted == 0
    assert launcher.moto.records(DATABASE, TABLE) == []
    assert metric("samples_failed_total") == 0
    refused_log = prometheus.log_lines("tls")
    assert refused_log, "Prometheus logged no TLS error"

    # The right certificate, swapped in under the running Prometheus (no reload): both files are
    # replaced by renames, as the guide says.
    for source, target in ((pki["client_cert"], cert), (pki["client_key"], key)):
        staged = target.with_suffix(".new")
        shutil.copy(source, staged)
        os.replace(staged, target)
    wait_until("a handshake with the right certificate", lambda: front.counts().accepted > 0, timeout=30)

    time.sleep(3)
    end_ms = int(time.time() * 1000)
    wait_until(
        "Prometheus to send everything up to the end of the window",
        lambda: metric("queue_highest_sent_timestamp_seconds") * 1000 >= end_ms,
        timeout=60, interval=0.5,
    )
    result, _, _ = settled(prometheus, launcher.moto, '{job="prometheus"}', DATABASE, TABLE, start_ms, end_ms)
    print("mtls:", result.summary(), front.counts())
    assert result.expected > 1000, result.summary()
    assert not result.problems(), result.problems()  # the refused window too: nothing lost
    assert metric("samples_failed_total") == 0
    assert metric("samples_dropped_total") == 0
    assert metric("samples_retried_total") > 0

    # Remote read goes through the same door with the same certificate.
    reads_before = len(connector.read_events())
    prometheus.query('count_over_time(up{job="prometheus"}[1m])', time.time())
    wait_until("a remote read through the front", lambda: len(connector.read_events()) > reads_before, timeout=20)
    assert {event["status"] for event in connector.read_events()} == {200}
