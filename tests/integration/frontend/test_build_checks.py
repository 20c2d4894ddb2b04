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
ENV FROM_IMAGE=$PATH
CMD echo first
CMD echo hello
"""


def test_a_build_reports_check_warnings_with_rule_line_and_url(pybuildctl, tmp_path) -> None:
    """Docker docs, "Checking your build configuration": "Invoking a build runs the checks by
    default, and displays any violations in the build output" as "a concise message containing
    the rule name, the message, and the line number"; with the rule's description and "a link to
    the documentation for the check"; "the build ran successfully"."""
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
        "signals (line 9)"),
        ("MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because "
        "only the last one will be used (line 9)"),
    ]
    for line in expected:
        assert line in shorts, f"missing {line!r} in {shorts}"
    assert not [s for s in shorts if "'$PATH'" in s], "a variable of the base image's ENV is defined"
    by_rule = {base64.b64decode(w["short"]).decode().split(":")[0]: w for w in _warnings(run)}
    assert by_rule["FromAsCasing"]["url"] == RULE_URL + "from-as-casing/"
    assert base64.b64decode(by_rule["FromAsCasing"]["detail"][0]).decode() == \
        "The 'as' keyword should match the case of the 'from' keyword"


def test_check_directive_skips_rules(pybuildctl, tmp_path) -> None:
    """"If you want to skip specific checks, you can use the `check=skip` directive [...] The
    `skip` parameter takes a CSV string of the check IDs you want to skip"; "To skip all checks,
    use the `skip=all` parameter"."""
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
    """"You can configure Docker to fail the build when violations are reported, using a
    `check=error=true` directive" ... "ERROR: lint violation found for rules: JSONArgsRecommended"."""
    dockerfile = "# check=error=true\nFROM busybox as base\nRUN true\n"
    run = _build(pybuildctl, _context(tmp_path, dockerfile), tmp_path / "out", check=False)
    assert run.returncode == 1
    assert "lint violation found for rules: FromAsCasing" in run.stderr
    assert "Dockerfile:1" in run.stderr  # shown at the directive
    assert "Traceback" not in run.stderr


def test_build_arg_check_overrides_the_directive(pybuildctl, tmp_path) -> None:
    """"You can also skip checks by passing the `BUILDKIT_DOCKERFILE_CHECK` build argument with a
    CSV string of check IDs you want to skip" (it takes the place of the `# check=` directive)."""
    dockerfile = "# check=error=true\nFROM busybox as base\nRUN true\n"
    run = _build(pybuildctl, _context(tmp_path, dockerfile), tmp_path / "out",
                 "--opt", "build-arg:BUILDKIT_DOCKERFILE_CHECK=skip=FromAsCasing")
    assert run.returncode == 0
    assert not any(s.startswith("FromAsCasing") for s in _shorts(run))


def test_method_check_runs_the_checks_without_building(pybuildctl, tmp_path) -> None:
    """"Instead of executing the build steps, this command only runs the checks and reports any
    issues it finds" (a failing RUN never runs), with "the verbose message" (rule, URL, message,
    lines); "if any violations are reported when using the `--check` flag, the command exits with
    a non-zero status code"."""
    run = _check(pybuildctl, tmp_path, "FROM busybox as base\nRUN exit 3\n")
    assert run.returncode == 1
    assert "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/" in run.stdout
    assert "'as' and 'FROM' keywords' casing do not match" in run.stdout
    assert "Dockerfile:1" in run.stdout and " >>> FROM busybox as base" in run.stdout
    assert "Check complete, 1 warning has been found!" in run.stdout
    assert "exit code: 3" not in run.stderr + run.stdout


def test_method_check_on_a_clean_dockerfile(pybuildctl, tmp_path) -> None:
    """A Dockerfile without violations: buildx's "Check complete, no warnings found." and
    status 0 (only "if any violations are reported" is the status non-zero)."""
    run = _check(pybuildctl, tmp_path, 'FROM busybox AS base\nRUN exit 3\nCMD ["true"]\n')
    assert run.returncode == 0, run.stderr + run.stdout
    assert "Check complete, no warnings found." in run.stdout


def test_from_rules_on_args_and_platforms(pybuildctl, tmp_path) -> None:
    """Rule descriptions: "FROM command must use declared ARGs" (UndefinedArgInFrom), "Setting
    platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    "FROM --platform flag should not use a constant value"; messages as BuildKit's linter words them."""
    dockerfile = ("ARG BASE=busybox\nFROM ${BASEE:-busybox} AS one\n"
                  "FROM --platform=$TARGETPLATFORM busybox AS two\nFROM --platform=linux/amd64 busybox AS three\n")
    run = _check(pybuildctl, tmp_path, dockerfile)
    assert "FROM argument 'BASEE' is not declared (did you mean BASE?)" in run.stdout
    assert "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior" \
        in run.stdout
    assert 'FROM --platform flag should not use constant value "linux/amd64"' in run.stdout


def test_stage_name_rules(pybuildctl, tmp_path) -> None:
    """Rule descriptions: "Stage names should be unique" (DuplicateStageName) and "Reserved words
    should not be used as stage names" (ReservedStageName)."""
    run = _check(pybuildctl, tmp_path, "FROM busybox AS a\nFROM busybox AS a\nFROM busybox AS scratch\n")
    assert 'Duplicate stage name "a", stage names should be unique' in run.stdout
    assert 'Stage name should not use the same name as reserved stage "scratch"' in run.stdout


def test_invalid_base_image_platform(pybuildctl, registry_host, tmp_path) -> None:
    """InvalidBaseImagePlatform: "Base image platform does not match expected target platform",
    when the registry only has an image for another platform."""
    (tmp_path / "arm").mkdir()
    arm = _context(tmp_path / "arm", "FROM busybox\nRUN true\n")
    image = f"{registry_host}/dfsem/arm-only:latest"
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={arm}", "--local", f"dockerfile={arm}",
                "--opt", "platform=linux/arm64", "--output", f"type=image,name={image},push=true"])
    (tmp_path / "use").mkdir()
    run = _check(pybuildctl, tmp_path / "use", f"FROM {image}\n", "--opt", "platform=linux/amd64")
    assert (f'Base image {image} was pulled with platform "linux/arm64", expected "linux/amd64" for current build'
            in run.stdout), run.stdout + run.stderr
