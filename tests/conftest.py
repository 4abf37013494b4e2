"""Suite-wide test settings, loaded before any test module (so before any `@settings`).

Hypothesis profile: no per-example deadline. Hypothesis's default fails an example that takes
over 200 ms, which measures the machine, not the code: CI has 2 cores shared with other jobs,
and an example that builds records, decodes protobuf or creates a botocore client can stall
past 200 ms under load, and then fails as "Flaky"/DeadlineExceeded for no fault of its own. How
long the suite takes is watched as a whole (CI's timeout); how fast the code is, by `make bench`.
A test's own `@settings(...)` inherits this unless it sets `deadline` itself.
"""

from hypothesis import settings

PROFILE = "prometheus-timestream"

settings.register_profile(PROFILE, deadline=None)
settings.load_profile(PROFILE)
