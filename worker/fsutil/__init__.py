"""Filesystem utilities for local files: patterns, filtered walks, incremental sync."""
