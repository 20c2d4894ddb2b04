"""BuildKit's build checks: warnings during real builds, `# check=` and `--opt method=check`.

Messages, rule names and URLs are BuildKit's (its linter's rule list and the rule pages under
https://docs.docker.com/go/dockerfile/rule/); each test quotes the documentation it follows.
"""
from __future__ import annotations

import base64

from pybuildkit.frontend.dockerfile.checks import RULES

from tests.integration.frontend.test_realistic_dockerfiles import _build, _context

RULE_URL = "https://docs.docker.com/go/dockerfile/rule/"


def _warnings(run) -> list[dict]:
    return [w for e in run.events for w in e.get("warnings", [])]


def _shorts(run) -> list[str]:
    return [base64.b64decode(w["short"]).decode() for w in _warnings(run)]


def _check(pybuildctl, tmp_path, dockerfile: str, *extra: str):
    ctx = _context(tmp_path, dockerfile)
    return pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                       "--opt", "method=check", *extra], check=False)


VIOLATIONS = """\
from busybox AS Base
MAINTAINER someone@example.com
ENV LEGACY value
ARG API_TOKEN=abc
WORKDIR relative
EXPOSE 8080/TCP
COPY $MISSING_VAR /dest
CMD echo first
CMD echo hello
"""


def test_a_build_reports_check_warnings_with_rule_line_and_url(pybuildctl, tmp_path) -> None:
    """"Build checks [...] run by default when you build": each violation is a build warning
    `Rule: message (line N)` with the rule's description and its documentation URL, and the
    build still succeeds (Docker docs, "Checking your build configuration")."""
    run = _build(pybuildctl, _context(tmp_path, VIOLATIONS), tmp_path / "out")
    shorts = _shorts(run)
    expected = [
        "FromAsCasing: 'AS' and 'from' keywords' casing do not match (line 1)",
        "StageNameCasing: Stage name 'Base' should be lowercase (line 1)",
        "ConsistentInstructionCasing: Command 'from' should match the case of the command majority (uppercase) (line 1)",
        "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
        'LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format (line 3)',
        'SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "API_TOKEN") (line 4)',
        'WorkdirRelativePath: Relative workdir "relative" can have unexpected results if the base image changes (line 5)',
        "ExposeProtoCasing: Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase (line 6)",
        "UndefinedVar: Usage of undefined variable '$MISSING_VAR' (line 7)",
        ("JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS "
        "signals (line 8)"),
        ("MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because "
        "only the last one will be used (line 8)"),
    ]
    for line in expected:
        assert line in shorts, f"missing {line!r} in {shorts}"
    by_rule = {base64.b64decode(w["short"]).decode().split(":")[0]: w for w in _warnings(run)}
    assert by_rule["FromAsCasing"]["url"] == RULE_URL + "from-as-casing/"
    assert base64.b64decode(by_rule["FromAsCasing"]["detail"][0]).decode() == \
        "The 'as' keyword should match the case of the 'from' keyword"


def test_check_directive_skips_rules(pybuildctl, tmp_path) -> None:
    """"# check=skip=<checks|all>": the listed rules (or all of them) are not reported."""
    dockerfile = "# check=skip=FromAsCasing,MaintainerDeprecated\nFROM busybox as base\nMAINTAINER me\nENV A b\n"
    run = _build(pybuildctl, _context(tmp_path, dockerfile), tmp_path / "out")
    rules = {s.split(":")[0] for s in _shorts(run)}
    assert "FromAsCasing" not in rules and "MaintainerDeprecated" not in rules
    assert "LegacyKeyValueFormat" in rules
    (tmp_path / "all").mkdir()
    quiet = _build(pybuildctl, _context(tmp_path / "all", "# check=skip=all\nFROM busybox as base\nMAINTAINER me\n"),
                   tmp_path / "all" / "out")
    assert not [s for s in _shorts(quiet) if s.split(":")[0] in RULES]


def test_check_error_true_fails_the_build(pybuildctl, tmp_path) -> None:
    """"# check=error=true": "the build fails if any check reports a violation"."""
    dockerfile = "# check=error=true\nFROM busybox as base\nRUN true\n"
    run = _build(pybuildctl, _context(tmp_path, dockerfile), tmp_path / "out", check=False)
    assert run.returncode == 1
    assert "lint violation found for rules: FromAsCasing" in run.stderr
    assert "Traceback" not in run.stderr


def test_build_arg_check_overrides_the_directive(pybuildctl, tmp_path) -> None:
    """"BUILDKIT_DOCKERFILE_CHECK" build argument: "the value of the build argument overrides the
    check directive"."""
    dockerfile = "# check=error=true\nFROM busybox as base\nRUN true\n"
    run = _build(pybuildctl, _context(tmp_path, dockerfile), tmp_path / "out",
                 "--opt", "build-arg:BUILDKIT_DOCKERFILE_CHECK=skip=FromAsCasing")
    assert run.returncode == 0
    assert not any(s.startswith("FromAsCasing") for s in _shorts(run))


def test_method_check_runs_the_checks_without_building(pybuildctl, tmp_path) -> None:
    """`--call=check` (`--opt method=check`) "evaluates build checks for the Dockerfile" and
    does not build: a failing RUN is never run; the report names rule, URL, message and lines,
    and the exit status is non-zero when a check fails."""
    run = _check(pybuildctl, tmp_path, "FROM busybox as base\nRUN exit 3\n")
    assert run.returncode == 1
    assert "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/" in run.stdout
    assert "'as' and 'FROM' keywords' casing do not match" in run.stdout
    assert "Dockerfile:1" in run.stdout and " >>> FROM busybox as base" in run.stdout
    assert "Check complete, 1 warning has been found!" in run.stdout
    assert "exit code: 3" not in run.stderr + run.stdout


def test_method_check_on_a_clean_dockerfile(pybuildctl, tmp_path) -> None:
    """A Dockerfile without violations: "Check complete, no warnings found." and status 0."""
    run = _check(pybuildctl, tmp_path, 'FROM busybox AS base\nRUN exit 3\nCMD ["true"]\n')
    assert run.returncode == 0, run.stderr + run.stdout
    assert "Check complete, no warnings found." in run.stdout


def test_from_rules_on_args_and_platforms(pybuildctl, tmp_path) -> None:
    """UndefinedArgInFrom ("FROM argument 'X' is not declared", with a suggestion),
    RedundantTargetPlatform and FromPlatformFlagConstDisallowed, as BuildKit words them."""
    dockerfile = ("ARG BASE=busybox\nFROM ${BASEE:-busybox} AS one\n"
                  "FROM --platform=$TARGETPLATFORM busybox AS two\nFROM --platform=linux/amd64 busybox AS three\n")
    run = _check(pybuildctl, tmp_path, dockerfile)
    assert "FROM argument 'BASEE' is not declared (did you mean BASE?)" in run.stdout
    assert "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior" \
        in run.stdout
    assert 'FROM --platform flag should not use constant value "linux/amd64"' in run.stdout


def test_stage_name_rules(pybuildctl, tmp_path) -> None:
    """DuplicateStageName and ReservedStageName ("Stage name should not use the same name as
    reserved stage")."""
    run = _check(pybuildctl, tmp_path, "FROM busybox AS a\nFROM busybox AS a\nFROM busybox AS scratch\n")
    assert 'Duplicate stage name "a", stage names should be unique' in run.stdout
    assert 'Stage name should not use the same name as reserved stage "scratch"' in run.stdout


def test_invalid_base_image_platform(pybuildctl, registry_host, tmp_path) -> None:
    """InvalidBaseImagePlatform: "Base image X was pulled with platform "linux/arm64", expected
    "linux/amd64" for current build" when the registry only has another platform."""
    (tmp_path / "arm").mkdir()
    arm = _context(tmp_path / "arm", "FROM busybox\nRUN true\n")
    image = f"{registry_host}/dfsem/arm-only:latest"
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={arm}", "--local", f"dockerfile={arm}",
                "--opt", "platform=linux/arm64", "--output", f"type=image,name={image},push=true"])
    (tmp_path / "use").mkdir()
    run = _check(pybuildctl, tmp_path / "use", f"FROM {image}\n", "--opt", "platform=linux/amd64")
    assert (f'Base image {image} was pulled with platform "linux/arm64", expected "linux/amd64" for current build'
            in run.stdout), run.stdout + run.stderr
