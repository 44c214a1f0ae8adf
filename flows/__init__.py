"""Prefect flows, one module per deployment: orchestration only, no data logic."""
