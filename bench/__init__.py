"""Benchmarks: each ``python -m bench.<script>`` measures medcrawl next to a baseline (docs/bench.md)."""
