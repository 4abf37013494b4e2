"""`python -m local_influxdb --data-dir DIR [--port 8086] [--auth] [--database prometheus]`:
run a local influxd until Ctrl-C, printing its URL (and the admin credentials with --auth)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile

from local_influxdb.server import DEFAULT_PASSWORD, DEFAULT_USERNAME, start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_influxdb", description=__doc__)
    parser.add_argument("--data-dir", help="where influxd keeps its data (default: a new temp dir)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--rpc-port", type=int, default=None, help="RPC port (default: a free one)")
    parser.add_argument("--auth", action="store_true", help="require credentials; create the admin user")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--database", action="append", default=[], help="create this database (repeatable)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="local-influxdb-")
    server = start(
        data_dir, args.port, rpc_port=args.rpc_port, auth=args.auth,
        username=args.username, password=args.password, databases=tuple(args.database),
    )
    print(f"influxd on {server.url} (data {server.data_dir}, log {server.log_path})", flush=True)
    if args.auth:
        print(f"admin user {server.username!r}, password {server.password!r}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


sys.exit(main(sys.argv[1:]))
