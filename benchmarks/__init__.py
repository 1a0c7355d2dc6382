"""The performance suite: ``make bench`` (``python -m benchmarks.run``)."""
