"""Cold start: importing the app loads only what the first write needs."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_app_loads_neither_the_reader_nor_a_botocore_client():
    probe = (
        "import json, sys; import app; "
        "print(json.dumps({m: m in sys.modules for m in "
        "('chalicelib.liveanalytics.reader', 'chalicelib.matchers', 'chalicelib.liveanalytics.query_sql', 'chalicelib.liveanalytics.query_client', "
        "'chalicelib.liveanalytics.read_results', 'chalicelib.regex', 'botocore.session', 'botocore.client', 'boto3')}))"
    )
    env = {**os.environ, "AWS_REGION": "us-east-1", "DEFAULT_DATABASE": "", "DEFAULT_TABLE": ""}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == dict.fromkeys(loaded, False), loaded
