"""`python -m local_timestream --port 9202 --database prometheus --table metrics` (`--help`: the key
pair it accepts, its log file, a directory that keeps its data)."""

import sys

from local_timestream.emulator import main

sys.exit(main(sys.argv[1:]))
