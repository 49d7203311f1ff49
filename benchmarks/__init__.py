"""Reproducible performance measurements of emsctl (not timed tests).

``python -m benchmarks`` runs every benchmark registered in a ``benchmarks/bench_*.py`` module,
prints a table and writes ``benchmarks/RESULTS.md`` and ``benchmarks/results.json``. See
``benchmarks/README.md`` for how to add a benchmark.
"""
