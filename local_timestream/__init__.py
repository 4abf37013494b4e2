"""The local Timestream for `make run` and the tests: moto's server plus what moto leaves out.

A development tool, never deployed: `chalice package` zips only `app.py` and `chalicelib/`.
"""
