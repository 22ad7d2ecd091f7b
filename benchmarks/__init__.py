"""Reproducible benchmarks against peer tools; each writes result.json, a Markdown table and PNGs."""
