import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protobuf_code_is_up_to_date_with_the_proto_sources():
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True, text=True, timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_generated_code_is_flat_modules_and_never_shadows_the_standard_library():
    # protoc mirrors a .proto's directory in its output: the 2.0 message's upstream path
    # (io/prometheus/write/v2/) would make a package `io` that hides the standard library's.
    import io

    from chalicelib.prompb import remote_write_v2_pb2

    prompb = ROOT / "chalicelib" / "prompb"
    assert not [path for path in prompb.iterdir() if path.is_dir() and path.name != "__pycache__"]
    assert hasattr(io, "BytesIO")
    assert remote_write_v2_pb2.Request.DESCRIPTOR.full_name == "io.prometheus.write.v2.Request"


def test_a_2_0_request_read_as_1_0_is_empty_as_the_reserved_fields_promise():
    from chalicelib.prompb.prometheus_remote_pb2 import WriteRequest
    from chalicelib.prompb.remote_write_v2_pb2 import Request, Sample, TimeSeries

    request = Request(symbols=["", "__name__", "up"],
                      timeseries=[TimeSeries(labels_refs=[1, 2], samples=[Sample(value=1.0, timestamp=1)])])
    assert len(WriteRequest.FromString(request.SerializeToString()).timeseries) == 0
