"""Cache tests reuse the engine tests' `pybuildctl` runner."""
from tests.integration.engine.conftest import pybuildctl  # noqa: F401  (a fixture)
