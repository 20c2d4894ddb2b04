"""pybuildctl."""
