"""pybuildkit.binfmt."""
