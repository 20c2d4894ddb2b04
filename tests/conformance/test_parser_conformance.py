"""Upstream's Dockerfile parser cases, every one: AST dumps byte for byte, negative cases, line
numbers, heredoc extraction, directives, DetectSyntax, JSON arrays, word splitting, warnings."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pybuildkit.frontend.dockerfile.parser import (DirectiveParser, DockerfileParseError, chomp_heredoc_content,
                                                   detect_syntax, heredocs_from_line, parse, parse_directive,
                                                   parse_heredoc, parse_words)
from pybuildkit.frontend.dockerfile.shell import ShellError

from .conftest import record_summary, require_data

DATA = require_data("parser")
HEREDOC = json.loads((DATA / "extra" / "heredoc.json").read_text(encoding="utf-8"))
MISC = json.loads((DATA / "extra" / "parser_misc.json").read_text(encoding="utf-8"))

Check = Callable[[], None]


def _dump_case(name: str) -> Check:
    def check() -> None:
        case = DATA / "testfiles" / name
        expected = (case / "result").read_bytes().decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        assert parse((case / "Dockerfile").read_bytes()).ast.dump() + "\n" == expected
    return check


def _negative_case(name: str) -> Check:
    def check() -> None:
        with pytest.raises(DockerfileParseError):
            parse((DATA / "testfiles-negative" / name / "Dockerfile").read_bytes())
    return check


def _line_numbers() -> None:
    result = parse((DATA / "testfile-line" / "Dockerfile").read_bytes())
    spec = MISC["line_numbers"]
    assert [result.ast.start_line, result.ast.end_line] == spec["root"]
    assert [[c.start_line, c.end_line] for c in result.ast.children] == spec["children"]


def _heredoc_json(docs) -> list[dict] | None:
    if not docs:
        return None
    return [{"Name": h.name, "Content": h.content, "Expand": h.expand, "Chomp": h.chomp,
             "FileDescriptor": h.file_descriptor} for h in docs]


def _extracted_heredoc(index: int, expected: dict) -> Check:
    def check() -> None:
        child = parse(HEREDOC["dockerfile"]).ast.children[index + 1]
        assert _heredoc_json(child.heredocs) == expected["heredocs"], expected["instruction"]
    return check


def _json_form_has_no_heredocs() -> None:
    result = parse(HEREDOC["json_form_no_heredocs"]["dockerfile"])
    assert [c.heredocs for c in result.ast.children[1:4]] == [[], [], []]


def _chomp() -> None:
    assert chomp_heredoc_content(HEREDOC["chomp"]["input"]) == HEREDOC["chomp"]["ChompHeredocContent"]


def _heredoc_named_eof(src: str) -> Check:
    def check() -> None:
        heredoc = parse_heredoc(src)
        assert heredoc is not None and heredoc.name == "EOF"
    return check


def _heredoc_error(src: str) -> Check:
    def check() -> None:
        with pytest.raises((ShellError, DockerfileParseError)):
            parse_heredoc(src)
    return check


def _not_heredoc(src: str) -> Check:
    def check() -> None:
        assert parse_heredoc(src) is None
    return check


def _heredocs_from_line(case: dict) -> Check:
    def check() -> None:
        assert [h.name for h in heredocs_from_line(case["line"])] == case["names"]
    return check


def _directives(case: dict) -> Check:
    def check() -> None:
        found, error = DirectiveParser().parse_all(case["input"])
        assert error is None
        assert [[d.name, d.value] for d in found] == case["ParseAll"], case["note"]
    return check


def _detect(key: str, case: dict) -> Check:
    def check() -> None:
        data = case["input"].encode()
        if "input_hex_prefix" in case:
            data = bytes.fromhex(case["input_hex_prefix"]) + data
        ref, cmdline, location, ok = detect_syntax(data) if key == "DetectSyntax" else parse_directive("check", data)
        assert ok == case["ok"]
        if "ref" in case:
            assert ref == case["ref"]
        if "cmdline" in case:
            assert cmdline == case["cmdline"]
        if "line" in case:
            assert location == (case["line"], case["line"])
    return check


def _valid_json_array(text: str, expected: list[str]) -> Check:
    def check() -> None:
        node = parse(f"CMD {text}\n").ast.children[0]
        assert node.args() == expected
        assert node.attributes == {"json": True}
    return check


def _invalid_json_array(text: str) -> Check:
    def check() -> None:
        with pytest.raises(DockerfileParseError, match="arrays must be comprised of strings only"):
            parse(f"CMD {text}\n")
    return check


def _name_val(case: dict) -> Check:
    def check() -> None:
        if "error" in case:
            with pytest.raises(DockerfileParseError, match=f"^{case['error']}$"):
                parse(f"{case['cmd']} {case['input']}\n")
        else:
            assert parse(f"ENV {case['input']}\n").ast.children[0].args() == case["chain"]
    return check


def _words(text: str, expected: list[str]) -> Check:
    def check() -> None:
        assert parse_words(text, "\\") == expected
    return check


def _empty_continuation_warning() -> None:
    text = ("FROM busybox\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n"
            "RUN non-indented \\\n# this is a comment\n   after-comment\n")
    warnings = parse(text).warnings
    assert [w.short for w in warnings] == ["Empty continuation line found in: RUN something     following     more",
                                           "Empty continuation line found in: RUN another     thing"]
    assert "will become errors in a future release" in warnings[0].detail[0]


def _line_too_long() -> None:
    with pytest.raises(DockerfileParseError, match="^dockerfile line greater than max allowed size of 65535$"):
        parse("FROM busybox\nRUN " + "x" * 65536 + "\n")


def _cases() -> dict[str, Check]:
    cases: dict[str, Check] = {}
    for path in sorted((DATA / "testfiles").iterdir()):
        cases[f"testfiles/{path.name}"] = _dump_case(path.name)
    for path in sorted((DATA / "testfiles-negative").iterdir()):
        cases[f"negative/{path.name}"] = _negative_case(path.name)
    cases["testfile-line"] = _line_numbers
    for index, expected in enumerate(HEREDOC["expected_heredocs"]):
        cases[f"heredoc/{index}:{expected['instruction']}"] = _extracted_heredoc(index, expected)
    cases["heredoc/json_form_no_heredocs"] = _json_form_has_no_heredocs
    cases["heredoc/chomp"] = _chomp
    for src in HEREDOC["ParseHeredoc"]["valid_name_EOF"]:
        cases[f"ParseHeredoc/valid:{src}"] = _heredoc_named_eof(src)
    for src in HEREDOC["ParseHeredoc"]["invalid_error"]:
        cases[f"ParseHeredoc/error:{src}"] = _heredoc_error(src)
    for src in HEREDOC["ParseHeredoc"]["not_heredoc_nil"]:
        cases[f"ParseHeredoc/nil:{src!r}"] = _not_heredoc(src)
    for case in HEREDOC["heredocsFromLine"]:
        cases[f"heredocsFromLine:{case['line']}"] = _heredocs_from_line(case)
    for index, case in enumerate(MISC["directives"]):
        cases[f"directives/{index}"] = _directives(case)
    for key in ("DetectSyntax", "ParseDirective_check"):
        for index, case in enumerate(MISC[key]):
            cases[f"{key}/{index}"] = _detect(key, case)
    for text, expected in MISC["json_arrays"]["valid"]:
        cases[f"json/valid:{text}"] = _valid_json_array(text, expected)
    for text in MISC["json_arrays"]["invalid_not_string_array_error"]:
        cases[f"json/invalid:{text}"] = _invalid_json_array(text)
    for case in MISC["parseNameVal"]:
        cases[f"parseNameVal:{case['input']}"] = _name_val(case)
    for text, expected in MISC["parseWords"]:
        cases[f"parseWords:{text}"] = _words(text, expected)
    cases["empty_continuation_warning"] = _empty_continuation_warning
    cases["line_too_long"] = _line_too_long
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_parser_case(name: str) -> None:
    CASES[name]()


def test_parser_conformance_summary() -> None:
    failed = []
    for name, check in CASES.items():
        try:
            check()
        except (Exception, pytest.fail.Exception):  # pytest.raises reports a miss as a BaseException
            failed.append(name)
    passed = len(CASES) - len(failed)
    record_summary("parser", passed, len(failed))
    print(f"parser conformance: {passed} passed, {len(failed)} failed")
    assert failed == []
