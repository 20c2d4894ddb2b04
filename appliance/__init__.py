"""pybuildkit.appliance."""
