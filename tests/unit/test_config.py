import re
import typing
from pathlib import Path

import pytest

from chalicelib.config import ConfigError, Settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"
# Variables whose Settings field is not simply the variable's name in lower case.
FIELD_OF = {"AWS_REGION": "region", "TIMESTREAM_WRITE_ENDPOINT": "write_endpoint",
            "TIMESTREAM_QUERY_ENDPOINT": "query_endpoint"}


def table_cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def documented_defaults():
    """(variable, its default cell) for every row of README's Configuration table. A row may
    name several variables (`A` / `B`), with one default each (`a` / `b`) or one for all."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = table_cells(lines[0])
    variable_column, default_column = header.index("variable"), header.index("default")
    rows = []
    for line in lines[2:]:  # after the header and its |---| line
        cells = table_cells(line)
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[variable_column])
        defaults = cells[default_column].split(" / ")
        rows += zip(names, defaults if len(defaults) == len(names) else [cells[default_column]] * len(names), strict=True)
    return rows


def documented_value(cell, field):
    """What load_settings({}) must give for a default cell: None for "unset ..." and "set by
    Lambda" (nothing in the environment), else the cell's first `code` or word, typed as the field."""
    if cell.lower().startswith("unset") or "lambda" in cell.lower():
        return None
    code = re.search(r"`([^`]*)`", cell)
    text = code.group(1) if code else cell.split()[0]
    kinds = typing.get_args(typing.get_type_hints(Settings)[field]) or (typing.get_type_hints(Settings)[field],)
    for kind in (int, float):
        if kind in kinds:
            return kind(text)
    return text


DOCUMENTED = documented_defaults()


def test_the_readme_configuration_table_is_read():
    names = {name for name, _ in DOCUMENTED}
    assert {"DATABASE_LABEL", "TABLE_LABEL", "DEFAULT_DATABASE", "AWS_REGION", "AUTH_MODE", "LOG_LEVEL",
            "MAX_FUTURE_MS", "MEMORY_RETENTION_HOURS", "CLIENT_CACHE_SIZE"} <= names


@pytest.mark.parametrize(("variable", "cell"), DOCUMENTED, ids=[name for name, _ in DOCUMENTED])
def test_each_documented_default_is_the_default(variable, cell):
    field = FIELD_OF.get(variable, variable.lower())
    settings = load_settings({})
    assert hasattr(settings, field), f"README documents {variable}, Settings has no {field} (see FIELD_OF)"
    assert getattr(settings, field) == documented_value(cell, field), f"README: {variable} defaults to {cell!r}"


def test_values_are_read_from_the_environment():
    settings = load_settings({
        "DATABASE_LABEL": "db", "TABLE_LABEL": "tbl", "DEFAULT_DATABASE": "prom", "DEFAULT_TABLE": "metrics",
        "AUTH_MODE": "IAM", "LOG_LEVEL": "debug", "AWS_REGION": "eu-west-1",
        "TIMESTREAM_WRITE_ENDPOINT": "http://127.0.0.1:9202", "WRITE_CONCURRENCY": "4",
        "WRITE_BUDGET_SECONDS": "2.5", "MAX_DECOMPRESSED_BYTES": "1048576",
    })
    assert (settings.database_label, settings.default_table, settings.auth_mode) == ("db", "metrics", "iam")
    assert (settings.log_level, settings.region, settings.write_concurrency) == ("DEBUG", "eu-west-1", 4)
    assert settings.write_budget_seconds == 2.5 and settings.max_decompressed_bytes == 1048576


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUTH_MODE": "token"}, "AUTH_MODE"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"WRITE_CONCURRENCY": "many"}, "WRITE_CONCURRENCY"),
        ({"WRITE_CONCURRENCY": "0"}, "WRITE_CONCURRENCY"),
        ({"WRITE_BUDGET_SECONDS": "60"}, "WRITE_BUDGET_SECONDS"),
        ({"MAX_DECOMPRESSED_BYTES": "-1"}, "MAX_DECOMPRESSED_BYTES"),
        ({"DEFAULT_DATABASE": "prom"}, "DEFAULT_TABLE"),
        ({"DATABASE_LABEL": "same", "TABLE_LABEL": "same"}, "DATABASE_LABEL"),
    ],
)
def test_invalid_values_fail_at_start_up_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)


def test_read_response_cap_defaults_below_lambdas_limit_and_is_read_from_the_environment():
    assert load_settings({}).max_read_response_bytes == 4_000_000
    assert load_settings({"MAX_READ_RESPONSE_BYTES": "65536"}).max_read_response_bytes == 65536
    for bad in ("lots", "1023", "4000001"):
        with pytest.raises(ConfigError, match="MAX_READ_RESPONSE_BYTES"):
            load_settings({"MAX_READ_RESPONSE_BYTES": bad})


def test_read_columns_cache_settings_default_and_are_read_from_the_environment():
    defaults = load_settings({})
    assert (defaults.read_columns_ttl_seconds, defaults.read_columns_refresh_seconds) == (60.0, 5.0)
    assert defaults.read_columns_cache_size == 256
    settings = load_settings({"READ_COLUMNS_TTL_SECONDS": "300", "READ_COLUMNS_REFRESH_SECONDS": "0.5",
                              "READ_COLUMNS_CACHE_SIZE": "16"})
    assert (settings.read_columns_ttl_seconds, settings.read_columns_refresh_seconds) == (300.0, 0.5)
    assert settings.read_columns_cache_size == 16


@pytest.mark.parametrize(
    ("variable", "bad"),
    [("READ_COLUMNS_TTL_SECONDS", "0"), ("READ_COLUMNS_TTL_SECONDS", "a minute"),
     ("READ_COLUMNS_REFRESH_SECONDS", "-1"), ("READ_COLUMNS_CACHE_SIZE", "0"),
     ("READ_COLUMNS_CACHE_SIZE", "2.5")],
)
def test_invalid_read_columns_cache_settings_name_the_variable(variable, bad):
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: bad})


@pytest.mark.parametrize(
    ("variable", "field", "low", "high"),
    [("MAX_FUTURE_MS", "max_future_ms", 0, 900_000),  # Timestream refuses more than 15 min ahead
     ("MEMORY_RETENTION_HOURS", "memory_retention_hours", 1, 8766),  # Timestream's longest: one year
     ("CLIENT_CACHE_SIZE", "client_cache_size", 1, 1024)],
)
def test_bounded_whole_numbers_are_read_and_checked_naming_the_variable(variable, field, low, high):
    for value in (low, high, (low + high) // 2):
        assert getattr(load_settings({variable: str(value)}), field) == value
    assert getattr(load_settings({variable: f" {high} "}), field) == high
    for bad in (str(low - 1), str(high + 1), "lots", "1.5", "12h"):
        with pytest.raises(ConfigError, match=variable):
            load_settings({variable: bad})


def test_the_storage_engine_defaults_to_liveanalytics_and_is_read_case_insensitively():
    assert load_settings({}).storage_engine == "liveanalytics"
    settings = load_settings({"STORAGE_ENGINE": "InfluxDB", "INFLUXDB_URL": "http://127.0.0.1:8086"})
    assert (settings.storage_engine, settings.influxdb_url) == ("influxdb", "http://127.0.0.1:8086")


def test_an_unknown_storage_engine_is_refused_naming_the_variable_and_the_choices():
    with pytest.raises(ConfigError, match="STORAGE_ENGINE must be one of liveanalytics, influxdb"):
        load_settings({"STORAGE_ENGINE": "timescale"})


def test_the_influxdb_engine_needs_its_url():
    with pytest.raises(ConfigError, match="INFLUXDB_URL"):
        load_settings({"STORAGE_ENGINE": "influxdb"})
