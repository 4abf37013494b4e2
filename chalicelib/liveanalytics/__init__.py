"""Timestream for LiveAnalytics: series -> WriteRecords calls, matchers -> SQL."""
