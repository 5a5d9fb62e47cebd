"""Side-by-side benchmarks of attnscope against its peers (run as ``python -m bench.<name>``)."""
