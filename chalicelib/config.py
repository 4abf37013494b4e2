"""Settings read from the environment once, validated, and frozen.

An invalid value fails at start-up with a message naming the variable, rather than at the first
request, so a bad deployment is visible immediately in the function's logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

MIB = 1024 * 1024


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    database_label: str = "prometheusDatabaseLabel"
    table_label: str = "prometheusTableLabel"
    default_database: str | None = None
    default_table: str | None = None
    region: str | None = None
    write_endpoint: str | None = None
    query_endpoint: str | None = None
    auth_mode: str = "basic"
    log_level: str = "INFO"
    max_decompressed_bytes: int = 32 * MIB
    # Timestream refuses records more than 15 minutes ahead of its clock.
    max_future_ms: int = 15 * 60 * 1000
    # Optional local check of the memory-store retention; unset leaves it to Timestream,
    # whose rejections are counted just the same.
    memory_retention_hours: int | None = None
    # Calls of a request in flight at once. Each mostly waits for Timestream (~20 ms), which
    # Lambda bills; they are awaited together from one thread, so more in flight costs no
    # threads: 64 sends the 20-50 calls of a 2000-sample request in one wave.
    write_concurrency: int = 64
    # Whole-request deadline for writes and their retries: well inside API Gateway's 29 s.
    write_budget_seconds: float = 20.0
    client_cache_size: int = 32
    # Series whose routing and limit checks are remembered (see records.SeriesCache).
    series_cache_size: int = 50_000
    # One attempt of a Timestream call: connecting, then waiting for the answer. Writes are
    # retried by the connector within write_budget_seconds, so an attempt is kept short.
    connect_timeout_seconds: float = 2.0
    write_timeout_seconds: float = 5.0
    # Queries can legitimately run for seconds; botocore retries throttling within API
    # Gateway's 29 s.
    query_timeout_seconds: float = 20.0
    query_max_attempts: int = 2
    # CloudWatch namespace of the EMF metrics; None turns them off.
    metrics_namespace: str | None = "PrometheusTimestream"
    # The `Function` dimension of every metric: the Lambda function's name.
    function_name: str = "prometheus-timestream"
    # Remote read answers (protobuf bytes) are capped below Lambda's 6 MB response limit.
    max_read_response_bytes: int = 4_000_000
    # Remote read learns a table's dimension columns with DESCRIBE and keeps them this long.
    read_columns_ttl_seconds: float = 60.0
    # A matcher on a label the kept columns lack reloads them, at most this often, so a dimension
    # written since the last DESCRIBE is found quickly without a DESCRIBE per query.
    read_columns_refresh_seconds: float = 5.0
    # Tables (per caller) whose columns are kept.
    read_columns_cache_size: int = 256
    # Where samples are stored: Timestream for LiveAnalytics, or Timestream for InfluxDB (any
    # server of InfluxDB's v1-compatible HTTP API) at influxdb_url.
    storage_engine: str = "liveanalytics"
    influxdb_url: str | None = None
    # Lines per InfluxDB /write request: thousands per request is InfluxDB's own advice; a 413
    # splits a request further.
    influxdb_batch_lines: int = 5000
    # AUTH_MODE=iam with InfluxDB: the Secrets Manager secret holding the function's token.
    influxdb_token_secret_arn: str | None = None
    # The function's memory (Lambda says, in AWS_LAMBDA_FUNCTION_MEMORY_SIZE): Lambda bills
    # time by it, so it prices a WriteRecords call against the write units it saves.
    lambda_memory_mb: int = 512


_AUTH_MODES = ("basic", "iam")
STORAGE_ENGINES = ("liveanalytics", "influxdb")
# What CloudWatch accepts as a namespace; "AWS/" is reserved for AWS's own.
_NAMESPACE = re.compile(r"[A-Za-z0-9._/#: -]{1,255}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(name, "").strip()
    return value or default


def _bounded(
    env: Mapping[str, str], name: str, default: float | None, kind: type, low: float, high: float
) -> float | None:
    """A whole number (`kind` int) or any number (`kind` float) within [low, high]."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_text(env, name, default) or default)
    folded = value.upper() if name == "LOG_LEVEL" else value.lower()
    if folded not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return folded


def _namespace(env: Mapping[str, str], default: str | None) -> str | None:
    if "METRICS_NAMESPACE" not in env:
        return default
    value = env["METRICS_NAMESPACE"].strip()
    if not value:
        return None
    if not _NAMESPACE.fullmatch(value) or value.startswith("AWS/"):
        raise ConfigError(
            "METRICS_NAMESPACE must be 1-255 letters, digits or . _ - / # : and space, not starting "
            f"with AWS/ (empty turns metrics off), got {value!r}"
        )
    return value


# Numeric settings: (Settings field, variable, int or float, lowest, highest allowed).
_BOUNDED = (
    ("max_decompressed_bytes", "MAX_DECOMPRESSED_BYTES", int, 1024, 256 * MIB),
    ("max_future_ms", "MAX_FUTURE_MS", int, 0, 15 * 60 * 1000),
    # Timestream's longest memory-store retention: one year.
    ("memory_retention_hours", "MEMORY_RETENTION_HOURS", int, 1, 8766),
    ("write_concurrency", "WRITE_CONCURRENCY", int, 1, 64),
    # Under API Gateway's 29 s integration timeout.
    ("write_budget_seconds", "WRITE_BUDGET_SECONDS", float, 0.5, 28.0),
    ("client_cache_size", "CLIENT_CACHE_SIZE", int, 1, 1024),
    ("series_cache_size", "SERIES_CACHE_SIZE", int, 100, 10_000_000),
    ("connect_timeout_seconds", "CONNECT_TIMEOUT_SECONDS", float, 0.1, 10.0),
    ("write_timeout_seconds", "WRITE_TIMEOUT_SECONDS", float, 0.1, 28.0),
    ("query_timeout_seconds", "QUERY_TIMEOUT_SECONDS", float, 0.1, 28.0),
    ("query_max_attempts", "QUERY_MAX_ATTEMPTS", int, 1, 5),
    # Above 4,000,000 the snappy + base64 + JSON envelope can pass Lambda's 6 MB limit.
    ("max_read_response_bytes", "MAX_READ_RESPONSE_BYTES", int, 1024, 4_000_000),
    ("read_columns_ttl_seconds", "READ_COLUMNS_TTL_SECONDS", float, 1.0, 86_400.0),
    ("read_columns_refresh_seconds", "READ_COLUMNS_REFRESH_SECONDS", float, 0.0, 86_400.0),
    ("read_columns_cache_size", "READ_COLUMNS_CACHE_SIZE", int, 1, 100_000),
    ("influxdb_batch_lines", "INFLUXDB_BATCH_LINES", int, 1, 1_000_000),
    # Lambda's range of memory sizes.
    ("lambda_memory_mb", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", int, 128, 10_240),
)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables (os.environ by default)."""
    env = os.environ if env is None else env
    defaults = Settings()
    database_label = _text(env, "DATABASE_LABEL", defaults.database_label)
    table_label = _text(env, "TABLE_LABEL", defaults.table_label)
    if database_label == table_label:
        raise ConfigError("DATABASE_LABEL and TABLE_LABEL must differ")
    default_database = _text(env, "DEFAULT_DATABASE", None)
    default_table = _text(env, "DEFAULT_TABLE", None)
    storage_engine = _choice(env, "STORAGE_ENGINE", defaults.storage_engine, STORAGE_ENGINES)
    # InfluxDB stores no table (the database is the whole destination), so DEFAULT_DATABASE is
    # enough there; a DEFAULT_TABLE alone still routes nothing.
    if default_table is not None and default_database is None:
        raise ConfigError("DEFAULT_TABLE needs DEFAULT_DATABASE: set both, or neither")
    if storage_engine == "liveanalytics" and default_database is not None and default_table is None:
        raise ConfigError("DEFAULT_DATABASE and DEFAULT_TABLE must be set together")
    influxdb_url = _text(env, "INFLUXDB_URL", None)
    if storage_engine == "influxdb" and influxdb_url is None:
        raise ConfigError("INFLUXDB_URL must be set when STORAGE_ENGINE is influxdb (e.g. https://host:8086)")
    if influxdb_url is not None and not re.fullmatch(r"https?://[^/?#\s@]+(/[^?#\s]*)?", influxdb_url):
        raise ConfigError(
            f"INFLUXDB_URL must be http(s)://host[:port][/path] without credentials, got {influxdb_url!r}"
        )
    auth_mode = _choice(env, "AUTH_MODE", defaults.auth_mode, _AUTH_MODES)
    token_secret = _text(env, "INFLUXDB_TOKEN_SECRET_ARN", None)
    if storage_engine == "influxdb" and auth_mode == "iam" and token_secret is None:
        raise ConfigError(
            "INFLUXDB_TOKEN_SECRET_ARN must be set when STORAGE_ENGINE is influxdb and AUTH_MODE is iam "
            "(the Secrets Manager secret holding the function's InfluxDB token)"
        )
    return Settings(
        database_label=database_label,
        table_label=table_label,
        default_database=default_database,
        default_table=default_table,
        region=_text(env, "AWS_REGION", None) or _text(env, "AWS_DEFAULT_REGION", None),
        write_endpoint=_text(env, "TIMESTREAM_WRITE_ENDPOINT", None),
        query_endpoint=_text(env, "TIMESTREAM_QUERY_ENDPOINT", None),
        auth_mode=auth_mode,
        log_level=_choice(env, "LOG_LEVEL", defaults.log_level, _LOG_LEVELS),
        metrics_namespace=_namespace(env, defaults.metrics_namespace),
        function_name=_text(env, "AWS_LAMBDA_FUNCTION_NAME", defaults.function_name),
        storage_engine=storage_engine,
        influxdb_url=influxdb_url,
        influxdb_token_secret_arn=token_secret,
        **{
            field: _bounded(env, variable, getattr(defaults, field), kind, low, high)
            for field, variable, kind, low, high in _BOUNDED
        },
    )
