"""Metric snapshots and feedback exports live here (metrics issue)."""
