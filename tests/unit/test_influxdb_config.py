"""Settings of the influxdb engine: DEFAULT_DATABASE alone routes, the URL and the iam secret
are checked at start-up naming the variable."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, load_settings
from chalicelib.engine import load_engine

INFLUX = {"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": "http://127.0.0.1:8086"}


def test_default_database_alone_is_enough_for_influxdb_and_still_not_for_liveanalytics():
    assert load_settings({**INFLUX, "DEFAULT_DATABASE": "prom"}).default_table is None
    with pytest.raises(ConfigError, match="DEFAULT_TABLE"):
        load_settings({"DEFAULT_DATABASE": "prom"})
    with pytest.raises(ConfigError, match="DEFAULT_DATABASE"):
        load_settings({**INFLUX, "DEFAULT_TABLE": "metrics"})


@pytest.mark.parametrize("url", ["127.0.0.1:8086", "ftp://host", "http://user:pw@host:8086", "http://host?db=x"])
def test_an_influxdb_url_that_is_not_http_host_port_path_fails_naming_the_variable(url):
    with pytest.raises(ConfigError, match="INFLUXDB_URL"):
        load_settings({**INFLUX, "INFLUXDB_URL": url})


def test_urls_with_https_a_port_and_a_path_are_accepted():
    url = "https://abc.us-east-1.timestream-influxdb.amazonaws.com:8086/influx"
    assert load_settings({**INFLUX, "INFLUXDB_URL": url}).influxdb_url == url


def test_iam_mode_needs_the_token_secret_and_batch_lines_are_bounded():
    with pytest.raises(ConfigError, match="INFLUXDB_TOKEN_SECRET_ARN"):
        load_settings({**INFLUX, "AUTH_MODE": "iam"})
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:t"
    assert load_settings({**INFLUX, "AUTH_MODE": "iam", "INFLUXDB_TOKEN_SECRET_ARN": arn}).influxdb_token_secret_arn == arn
    assert load_settings({**INFLUX, "INFLUXDB_BATCH_LINES": "100"}).influxdb_batch_lines == 100
    with pytest.raises(ConfigError, match="INFLUXDB_BATCH_LINES"):
        load_settings({**INFLUX, "INFLUXDB_BATCH_LINES": "0"})


def test_the_influxdb_engine_is_loaded_by_name_without_importing_the_other_engine():
    import sys

    before = {name for name in sys.modules if name.startswith("chalicelib.liveanalytics")}
    engine = load_engine(load_settings({**INFLUX, "DEFAULT_DATABASE": "prom"}))
    assert engine.name == "influxdb"
    assert {name for name in sys.modules if name.startswith("chalicelib.liveanalytics")} == before
