"""Generate chalicelib/prompb/*_pb2.py from proto/*.proto with grpcio-tools' bundled protoc.

`--check` regenerates into a temporary folder and fails if the committed code differs, so a
hand edit or a forgotten regeneration is caught by the test suite.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "chalicelib" / "prompb"


def generate(out_dir: Path) -> list[Path]:
    sources = sorted(PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", *map(str, sources)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [out_dir / (src.stem + "_pb2.py") for src in sources]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as tmp:
            stale = [
                p.name for p in generate(Path(tmp))
                if not (OUT_DIR / p.name).exists() or not filecmp.cmp(p, OUT_DIR / p.name, shallow=False)
            ]
        if stale:
            print(f"generated code is out of date, run `make proto`: {', '.join(stale)}")
            return 1
        print("generated code is up to date")
        return 0
    for path in generate(OUT_DIR):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
