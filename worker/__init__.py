"""pybuildkit.worker."""
