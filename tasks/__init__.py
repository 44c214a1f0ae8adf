"""Prefect tasks: each does one step (read bronze, normalize, write silver/buffer, report...)."""
