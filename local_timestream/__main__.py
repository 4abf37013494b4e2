"""`python -m local_timestream --port 9202 --database prometheus --table metrics`."""

import sys

from local_timestream.emulator import main

sys.exit(main(sys.argv[1:]))
