"""Upstream's shell-lexer cases, every one: envVarTest, wordsTest and process_with_matches.json."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pybuildkit.frontend.dockerfile.shell import Lex, ShellError, env_from_list
from pybuildkit.frontend.dockerfile.shell.lex import convert_shell_pattern_to_regex, reverse_pattern

from .conftest import record_summary, require_data

DATA = require_data("shell")
ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}
MATCHES = json.loads((DATA / "process_with_matches.json").read_text(encoding="utf-8"))

Check = Callable[[], None]


def _env_var_lines() -> list[tuple[int, str, str]]:
    """(line number, input, expected) of the A and U lines; W lines are Windows-only."""
    out = []
    for number, line in enumerate((DATA / "envVarTest").read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"envVarTest:{number} is malformed"
        tag, word, expected = (part.strip() for part in fields)
        assert tag in ("A", "U", "W"), f"envVarTest:{number} has an unknown platform tag {tag}"
        if tag != "W":
            out.append((number, word, expected))
    return out


def _words_lines() -> list[tuple[int, str, list[str], dict[str, str]]]:
    """(line number, input, expected words, environment so far); ENV lines add to the environment."""
    out = []
    env: list[str] = []
    for number, line in enumerate((DATA / "wordsTest").read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            env.append(line[3:].lstrip(" "))
            continue
        if not line:
            continue
        left, right = line.split("|")
        out.append((number, left.strip(), right.lstrip(" ").split(","), env_from_list(env)))
    return out


def _env_var(word: str, expected: str) -> Check:
    def check() -> None:
        if expected == "error":
            with pytest.raises(ShellError):
                Lex("\\").process_word(word, ENV_VAR_ENV)
        else:
            assert Lex("\\").process_word(word, ENV_VAR_ENV) == expected
    return check


def _words(word: str, expected: list[str], env: dict[str, str]) -> Check:
    def check() -> None:
        try:
            words = Lex("\\").process_words(word, env)
        except ShellError:
            words = ["error"]
        assert words == expected
    return check


def _matches(case: dict) -> Check:
    def check() -> None:
        if case.get("expectedErr"):
            with pytest.raises(ShellError):
                Lex("\\").process_word_with_matches(case["input"], case["envs"])
            return
        result = Lex("\\").process_word_with_matches(case["input"], case["envs"])
        assert result.result == case["expected"]
        assert result.matched == set(case["matches"])
        assert result.unmatched == set(case["unmatched"])
    return check


def _platform(run: dict) -> Check:
    def check() -> None:
        assert Lex("\\").process_word(MATCHES["platform_cases"]["template"], run["envs"]) == run["expected"]
    return check


def _mandatory(run: dict) -> Check:
    def check() -> None:
        word = MATCHES["mandatory_env_vars"][run["word"]]
        env = env_from_list(run["envs"])
        if "error_contains" in run:
            with pytest.raises(ShellError, match=run["error_contains"]):
                Lex("\\").process_word(word, env)
        else:
            assert Lex("\\").process_word(word, env) == run["expected"]
    return check


def _get_env(items: list[str], key: str, expected: str) -> Check:
    def check() -> None:
        assert env_from_list(items).get(key, "") == expected.split(" ")[0]  # "bike (last wins)" -> "bike"
    return check


def _regex(pattern: str, expected: str | None) -> Check:
    def check() -> None:
        if expected is None:
            with pytest.raises(ShellError):
                convert_shell_pattern_to_regex(pattern, True, True)
        else:
            assert convert_shell_pattern_to_regex(pattern, True, True) == expected
    return check


def _reverse(pattern: str, expected: str) -> Check:
    def check() -> None:
        assert reverse_pattern(pattern) == expected
    return check


def _cases() -> dict[str, Check]:
    cases: dict[str, Check] = {}
    for number, word, expected in _env_var_lines():
        cases[f"envVarTest:{number}:{word}"] = _env_var(word, expected)
    for number, word, expected_words, env in _words_lines():
        cases[f"wordsTest:{number}:{word}"] = _words(word, expected_words, env)
    for index, case in enumerate(MATCHES["cases"]):
        cases[f"matches/{index}:{case['input']}"] = _matches(case)
    for index, run in enumerate(MATCHES["platform_cases"]["runs"]):
        cases[f"platform/{index}"] = _platform(run)
    for index, run in enumerate(MATCHES["mandatory_env_vars"]["runs"]):
        cases[f"mandatory/{index}"] = _mandatory(run)
    for index, (items, key, expected) in enumerate(MATCHES["getEnv"]["runs"]):
        cases[f"getEnv/{index}"] = _get_env(items, key, expected)
    for pattern, expected in MATCHES["convertShellPatternToRegex"]["valid"].items():
        cases[f"regex/valid:{pattern}"] = _regex(pattern, expected)
    for pattern in MATCHES["convertShellPatternToRegex"]["invalid"]:
        cases[f"regex/invalid:{pattern}"] = _regex(pattern, None)
    for pattern, expected in MATCHES["reversePattern"].items():
        cases[f"reversePattern:{pattern}"] = _reverse(pattern, expected)
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_shell_case(name: str) -> None:
    CASES[name]()


def test_shell_conformance_summary() -> None:
    failed = []
    for name, check in CASES.items():
        try:
            check()
        except (Exception, pytest.fail.Exception):  # pytest.raises reports a miss as a BaseException
            failed.append(name)
    passed = len(CASES) - len(failed)
    record_summary("shell", passed, len(failed))
    print(f"shell conformance: {passed} passed, {len(failed)} failed")
    assert failed == []
