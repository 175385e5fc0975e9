"""Offline evaluation: ``hpt eval`` (mean@k / pass@k per data source, protocol recorded)."""
