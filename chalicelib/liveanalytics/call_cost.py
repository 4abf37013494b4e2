"""What a WriteRecords call costs in dollars: the write units Timestream bills for it, and the
Lambda time it takes, so that batching can weigh one against the other (one objective).

Timestream bills a call in whole KiB of its records (metering.py). Lambda bills the function's
wall time at its memory size, and a call takes some of it: its CPU (building the body, signing,
sending, reading the answer: the GIL runs one at a time) and its share of the waiting, since up
to `concurrency` calls wait for Timestream at once. So a call of its own is worth it only when
the units it saves cost more than that time; at 512 MB with 8 calls in flight a call costs about
1/20 of a write unit (1/40 with 64), so in practice: when it saves a whole unit.

The prices are the published ones (us-east-1); bench/cost.py uses these same constants.
"""

from __future__ import annotations

from dataclasses import dataclass

# Published prices, us-east-1, read on 2026-12-01 (aws.amazon.com/timestream/pricing,
# /api-gateway/pricing, /lambda/pricing):
PRICES_READ = "2026-12-01"
# Timestream for LiveAnalytics: writes, per million 1 KiB write units.
TIMESTREAM_USD_PER_MILLION_WRITE_UNITS = 0.50
# API Gateway REST API (what Chalice deploys): per million requests, first 333 million a month.
API_GATEWAY_REST_USD_PER_MILLION_REQUESTS = 3.50
# API Gateway HTTP API: per million requests, first 300 million a month.
API_GATEWAY_HTTP_USD_PER_MILLION_REQUESTS = 1.00
# Lambda, x86: per GB-second of duration (first 6 billion GB-seconds a month), per million requests.
LAMBDA_USD_PER_GB_SECOND = 0.0000166667
LAMBDA_USD_PER_MILLION_REQUESTS = 0.20

# CPU of one WriteRecords call of ~40-100 records in the connector's process: its JSON body,
# signature and HTTP exchange, with the kernel's share (measured by bench/call_cpu.py on the
# benchmark's machine: ~0.2 ms; on Lambda the CPU share of small memory sizes is lower, and a
# TLS connection adds encryption of the body).
CALL_CPU_SECONDS = 0.0002
# How long Timestream takes to answer one call: the latency the benchmark assumes (a call of
# 100 records typically takes tens of milliseconds).
CALL_WAIT_SECONDS = 0.020
# The deployed function's memory when Lambda does not say (the prod stage of .chalice/config.json).
DEFAULT_LAMBDA_MEMORY_MB = 512


@dataclass(frozen=True)
class CallPrices:
    """Dollars of one write unit and of one more WriteRecords call."""

    unit_usd: float
    call_usd: float

    @classmethod
    def for_lambda(
        cls,
        memory_mb: int = DEFAULT_LAMBDA_MEMORY_MB,
        concurrency: int = 64,  # the default WRITE_CONCURRENCY
        call_cpu_seconds: float = CALL_CPU_SECONDS,
        call_wait_seconds: float = CALL_WAIT_SECONDS,
    ) -> CallPrices:
        """Prices for a function of `memory_mb` sending `concurrency` calls at once."""
        seconds = call_cpu_seconds + call_wait_seconds / max(1, concurrency)
        return cls(
            unit_usd=TIMESTREAM_USD_PER_MILLION_WRITE_UNITS / 1e6,
            call_usd=seconds * memory_mb / 1024 * LAMBDA_USD_PER_GB_SECOND,
        )

    def dollars(self, units: int, calls: int) -> float:
        """What `calls` calls billed `units` write units in all cost."""
        return units * self.unit_usd + calls * self.call_usd

    def split_pays(self, units_saved: int, calls_added: int) -> bool:
        """Whether sending records in `calls_added` more calls, which saves `units_saved` write
        units, costs less in all (a tie keeps the fewer calls)."""
        return units_saved * self.unit_usd > calls_added * self.call_usd


# What the connector weighs its calls with unless told otherwise.
DEFAULT_PRICES = CallPrices.for_lambda()
