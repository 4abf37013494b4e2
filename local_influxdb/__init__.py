"""A real local InfluxDB 1.x (`influxd`) for development and tests: `server.start(data_dir, port)`.

A development tool, never deployed: `chalice package` zips only `app.py` and `chalicelib/`.
"""
