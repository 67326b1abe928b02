"""The project's benchmarks: `python -m benchmarks [NAME...]` runs every `benchmarks/*_bench.py` (or
the named ones), each printing its own figures against a baseline measured in the same run (DESIGN
§7)."""
