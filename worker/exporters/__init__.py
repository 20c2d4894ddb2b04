"""Exporters: turn solve results into outputs (local dirs, tars, images)."""
