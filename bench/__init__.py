"""``make bench``: the benchmarks against the alternatives (BENCHMARKS.md explains them).

Not part of ``make test``: every figure here is a median of repeated runs on a shared machine,
and every comparison is a ratio of two things measured side by side in the same run.
"""
