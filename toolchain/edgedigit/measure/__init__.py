"""Measurement stages: host runtimes (``host``), stress (``stress``), backends (``compare``), devices (``device``)."""
