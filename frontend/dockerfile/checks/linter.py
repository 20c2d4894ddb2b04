"""Collecting build-check warnings under the build's check configuration.

The configuration comes from the `# check=` directive, or from the `BUILDKIT_DOCKERFILE_CHECK`
build argument, which replaces it (as in BuildKit): `skip=Rule1,Rule2` or `skip=all` silences
rules, `error=true` turns any warning into a build failure, `experimental=Rule|all` enables the
experimental rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.checks.rules import RULES
from pybuildkit.frontend.dockerfile.instructions import DockerfileError


@dataclass(frozen=True)
class CheckConfig:
    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False
    experimental: frozenset[str] = frozenset()
    experimental_all: bool = False


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_check_config(text: str | None) -> CheckConfig:
    """`skip=...;error=...;experimental=...` in BuildKit's syntax; errors use its wording."""
    text = (text or "").strip()
    if not text:
        return CheckConfig()
    skip: list[str] = []
    skip_all = error = experimental_all = False
    experimental: list[str] = []
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            raise DockerfileError(f"invalid check option {part!r}")
        key, value = key.strip(), value.strip()
        if key == "skip":
            if value == "all":
                skip_all = True
            else:
                skip = _names(value)
        elif key == "error":
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise DockerfileError(f"failed to parse check option {part!r}: invalid syntax")
            error = value.lower() in ("1", "t", "true")
        elif key == "experimental":
            if value == "all":
                experimental_all = True
            else:
                experimental = _names(value)
        else:
            raise DockerfileError(f"invalid check option {key!r}")
    return CheckConfig(frozenset(skip), skip_all, error, frozenset(experimental), experimental_all)


@dataclass(frozen=True)
class LintWarning:
    rule: str
    description: str
    url: str
    detail: str  # the formatted message
    start_line: int = 0
    end_line: int = 0

    @property
    def short(self) -> str:
        """What a build's progress shows: `Rule: message (line N)`, as BuildKit's LintFormatShort."""
        text = f"{self.rule}: {self.detail}"
        return f"{text} (line {self.start_line})" if self.start_line > 0 else text


@dataclass
class Linter:
    config: CheckConfig = field(default_factory=CheckConfig)
    warnings: list[LintWarning] = field(default_factory=list)

    def enabled(self, rule_name: str) -> bool:
        rule = RULES[rule_name]
        if rule.experimental:  # "the `experimental` directive takes precedence over the `skip` directive"
            return self.config.experimental_all or rule_name in self.config.experimental
        return not (self.config.skip_all or rule_name in self.config.skip)

    def run(self, rule_name: str, detail: str, lines: tuple[int, int] = (0, 0)) -> None:
        if not self.enabled(rule_name):
            return
        rule = RULES[rule_name]
        warning = LintWarning(rule.name, rule.description, rule.url, detail, lines[0], lines[1] or lines[0])
        if warning not in self.warnings:  # several platforms convert the same line: report it once
            self.warnings.append(warning)

    def error(self) -> DockerfileError | None:
        """With `error=true`, the failure the warnings amount to (None when there are none)."""
        if not self.config.error or not self.warnings:
            return None
        names = sorted({w.rule for w in self.warnings})
        return DockerfileError("lint violation found for rules: " + ", ".join(names))


def report(warnings: list[LintWarning], source: bytes, filename: str) -> str:
    """The check result as BuildKit prints it (`WARNING: Rule - URL`, the message, the lines)."""
    out: list[str] = []
    lines = source.decode("utf-8", "replace").split("\n")
    for w in sorted(warnings, key=lambda w: (w.start_line, w.rule)):
        out.append("")
        out.append(f"WARNING: {w.rule}" + (f" - {w.url}" if w.url else ""))
        out.append(w.detail)
        if w.start_line:
            out.append(f"{filename}:{w.start_line}" + (f"-{w.end_line}" if w.end_line != w.start_line else ""))
            out.append("-" * 20)
            first, last = max(1, w.start_line - 2), min(len(lines), w.end_line + 2)
            for number in range(first, last + 1):
                marker = ">>>" if w.start_line <= number <= w.end_line else "   "
                out.append(f" {number:>3} | {marker} {lines[number - 1]}")
            out.append("-" * 20)
    return "\n".join(out) + ("\n" if out else "")
