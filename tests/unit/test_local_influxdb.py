"""The local InfluxDB's generated configuration (no server needed)."""

from local_influxdb.server import render_config

BASE = """reporting-enabled = true
bind-address = ":8088"

[meta]
  dir = "/var/lib/influxdb/meta"

[http]
  enabled = true
  bind-address = ":8086"

[[graphite]]
  enabled = false
  bind-address = ":2003"
"""


def test_overrides_replace_keys_only_in_their_own_section():
    out = render_config(BASE, {
        "": {"bind-address": '"127.0.0.1:9999"'},
        "http": {"bind-address": '"127.0.0.1:8086"', "auth-enabled": "true"},
    })
    assert 'bind-address = "127.0.0.1:9999"' in out.splitlines()[1]
    assert '  bind-address = "127.0.0.1:8086"' in out
    # The graphite listener (disabled) keeps its own bind-address: only [http]'s was named.
    assert 'bind-address = ":2003"' in out
    assert out.count("auth-enabled = true") == 1


def test_an_override_for_a_missing_key_or_section_is_added_not_lost():
    out = render_config(BASE, {"meta": {"logging-enabled": "false"}, "monitor": {"store-enabled": "false"}})
    meta = out.split("[meta]")[1].split("[http]")[0]
    assert "logging-enabled = false" in meta
    assert "[monitor]\n  store-enabled = false" in out
