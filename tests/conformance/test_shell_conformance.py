"""Upstream's shell-lexer cases (envVarTest, wordsTest, process_with_matches.json), every one."""
from __future__ import annotations

import json

import pytest

from pybuildkit.frontend.dockerfile.shell import Lex, ShellError, env_from_list
from pybuildkit.frontend.dockerfile.shell.lex import convert_shell_pattern_to_regex, reverse_pattern

from .conftest import record_summary, require_data

DATA = require_data("shell")
ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_cases() -> list[tuple[str, str]]:
    cases = []
    for line in (DATA / "envVarTest").read_text().splitlines():
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        tag, word, expected = (part.strip() for part in line.split("|"))
        if tag in ("A", "U"):
            cases.append((word, expected))
    return cases


def _words_cases() -> list[tuple[str, list[str], dict[str, str]]]:
    cases = []
    env: list[str] = []
    for line in (DATA / "wordsTest").read_text().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            env.append(line[3:].lstrip(" "))
            continue
        if "|" not in line:
            continue
        left, right = line.split("|")
        cases.append((left.strip(), right.lstrip(" ").split(","), env_from_list(env)))
    return cases


MATCHES = json.loads((DATA / "process_with_matches.json").read_text())


def run_env_var(word: str, expected: str) -> bool:
    try:
        result = Lex("\\").process_word(word, ENV_VAR_ENV)
    except ShellError:
        return expected == "error"
    return expected != "error" and result == expected


def run_words(word: str, expected: list[str], env: dict[str, str]) -> bool:
    try:
        words = Lex("\\").process_words(word, env)
    except ShellError:
        words = ["error"]
    return words == expected


def run_matches(case: dict) -> bool:
    try:
        result = Lex("\\").process_word_with_matches(case["input"], case["envs"])
    except ShellError:
        return "expectedErr" in case
    if "expectedErr" in case:
        return False
    return (result.result == case["expected"] and result.matched == set(case["matches"])
            and result.unmatched == set(case["unmatched"]))


@pytest.mark.parametrize("word,expected", _env_var_cases())
def test_env_var_case(word: str, expected: str) -> None:
    assert run_env_var(word, expected)


@pytest.mark.parametrize("word,expected,env", _words_cases())
def test_words_case(word: str, expected: list[str], env: dict[str, str]) -> None:
    assert run_words(word, expected, env)


@pytest.mark.parametrize("case", MATCHES["cases"], ids=lambda c: c["input"])
def test_process_with_matches_case(case: dict) -> None:
    assert run_matches(case)


def test_platform_template_cases() -> None:
    template = MATCHES["platform_cases"]["template"]
    for run in MATCHES["platform_cases"]["runs"]:
        assert Lex("\\").process_word(template, run["envs"]) == run["expected"]


def test_mandatory_env_vars() -> None:
    spec = MATCHES["mandatory_env_vars"]
    for run in spec["runs"]:
        word = spec[run["word"]]
        env = env_from_list(run["envs"])
        if "error_contains" in run:
            with pytest.raises(ShellError, match=run["error_contains"]):
                Lex("\\").process_word(word, env)
        else:
            assert Lex("\\").process_word(word, env) == run["expected"]


def test_pattern_conversion_and_reversal() -> None:
    for pattern, regex in MATCHES["convertShellPatternToRegex"]["valid"].items():
        assert convert_shell_pattern_to_regex(pattern, True, True) == regex
    for pattern in MATCHES["convertShellPatternToRegex"]["invalid"]:
        with pytest.raises(ShellError):
            convert_shell_pattern_to_regex(pattern, True, True)
    for pattern, reversed_ in MATCHES["reversePattern"].items():
        assert reverse_pattern(pattern) == reversed_


def test_env_from_list_semantics() -> None:
    for items, key, expected in MATCHES["getEnv"]["runs"]:
        assert env_from_list(items).get(key, "") == expected.split(" ")[0]


def test_shell_conformance_summary() -> None:
    results = [run_env_var(w, e) for w, e in _env_var_cases()]
    results += [run_words(w, e, env) for w, e, env in _words_cases()]
    results += [run_matches(c) for c in MATCHES["cases"]]
    failed = results.count(False)
    record_summary("shell", len(results) - failed, failed)
    assert failed == 0
