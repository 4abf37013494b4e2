import pytest

from chalicelib.config import ConfigError, Settings, load_settings


def test_defaults_match_the_documented_contract():
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.database_label, settings.table_label) == ("prometheusDatabaseLabel", "prometheusTableLabel")
    assert settings.default_database is None and settings.auth_mode == "basic"
    assert settings.max_decompressed_bytes == 32 * 1024 * 1024


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
