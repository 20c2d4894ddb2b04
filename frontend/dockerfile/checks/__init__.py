"""BuildKit's Dockerfile build checks: rules, the `# check=` configuration, and the report."""
from pybuildkit.frontend.dockerfile.checks.linter import (
    CheckConfig,
    Linter,
    LintWarning,
    parse_check_config,
)
from pybuildkit.frontend.dockerfile.checks.rules import RULES, Rule

__all__ = ["RULES", "CheckConfig", "LintWarning", "Linter", "Rule", "parse_check_config"]
