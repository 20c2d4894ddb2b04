"""pybuildkit.frontend."""
