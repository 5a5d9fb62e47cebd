"""Side-by-side benchmarks against peers; see shared BENCHMARKS.md and bench/RESULTS.md."""
