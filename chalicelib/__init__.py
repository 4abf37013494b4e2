"""The connector's domain: everything below app.py, importable and testable without Chalice."""

# Sent to AWS in every Timestream call's User-Agent, so AWS (and the account's CloudTrail) can
# tell this connector's traffic apart.
__version__ = "2.0.0"
USER_AGENT_PRODUCT = f"prometheus-timestream/{__version__}"
