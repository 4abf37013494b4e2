"""Timestream for InfluxDB, or any server of InfluxDB's v1-compatible HTTP API (STORAGE_ENGINE=influxdb)."""
