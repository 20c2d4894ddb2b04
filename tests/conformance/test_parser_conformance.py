"""Upstream's parser cases: AST dumps byte for byte, negative cases, line numbers, heredocs,
directives, JSON arrays and word splitting."""
from __future__ import annotations

import json

import pytest

from pybuildkit.frontend.dockerfile.parser import (DockerfileParseError, Directives, chomp_heredoc_content,
                                                   detect_directive, heredocs_from_line, parse, parse_heredoc,
                                                   parse_words)
from pybuildkit.frontend.dockerfile.shell import ShellError

from .conftest import record_summary, require_data

DATA = require_data("parser")
CASES = sorted(p.name for p in (DATA / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (DATA / "testfiles-negative").iterdir())
HEREDOC = json.loads((DATA / "extra" / "heredoc.json").read_text())
MISC = json.loads((DATA / "extra" / "parser_misc.json").read_text())


def run_case(name: str) -> bool:
    case = DATA / "testfiles" / name
    result = parse((case / "Dockerfile").read_bytes())
    expected = (case / "result").read_bytes().decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    return result.ast.dump() + "\n" == expected


def run_negative(name: str) -> bool:
    try:
        parse((DATA / "testfiles-negative" / name / "Dockerfile").read_bytes())
    except DockerfileParseError:
        return True
    return False


@pytest.mark.parametrize("name", CASES)
def test_dump_matches(name: str) -> None:
    case = DATA / "testfiles" / name
    result = parse((case / "Dockerfile").read_bytes())
    expected = (case / "result").read_bytes().decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    assert result.ast.dump() + "\n" == expected


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_case_fails(name: str) -> None:
    assert run_negative(name)


def test_line_numbers() -> None:
    result = parse((DATA / "testfile-line" / "Dockerfile").read_bytes())
    spec = MISC["line_numbers"]
    assert [result.ast.start_line, result.ast.end_line] == spec["root"]
    assert [[c.start_line, c.end_line] for c in result.ast.children] == spec["children"]


def _heredoc_json(docs) -> list[dict] | None:
    if not docs:
        return None
    return [{"Name": h.name, "Content": h.content, "Expand": h.expand, "Chomp": h.chomp,
             "FileDescriptor": h.file_descriptor} for h in docs]


def test_heredocs_extracted() -> None:
    result = parse(HEREDOC["dockerfile"])
    for index, expected in enumerate(HEREDOC["expected_heredocs"]):
        child = result.ast.children[index + 1]
        assert _heredoc_json(child.heredocs) == expected["heredocs"], expected["instruction"]


def test_json_form_never_has_heredocs() -> None:
    result = parse(HEREDOC["json_form_no_heredocs"]["dockerfile"])
    assert all(not c.heredocs for c in result.ast.children[1:4])


def test_heredoc_helpers() -> None:
    assert chomp_heredoc_content(HEREDOC["chomp"]["input"]) == HEREDOC["chomp"]["ChompHeredocContent"]
    for src in HEREDOC["ParseHeredoc"]["valid_name_EOF"]:
        assert parse_heredoc(src).name == "EOF", src
    for src in HEREDOC["ParseHeredoc"]["invalid_error"]:
        with pytest.raises((ShellError, DockerfileParseError)):
            parse_heredoc(src)
    for src in HEREDOC["ParseHeredoc"]["not_heredoc_nil"]:
        assert parse_heredoc(src) is None, src
    for case in HEREDOC["heredocsFromLine"]:
        assert [h.name for h in heredocs_from_line(case["line"])] == case["names"]


def test_directives() -> None:
    from pybuildkit.frontend.dockerfile.parser.directives import DirectiveParser

    for case in MISC["directives"]:
        found = DirectiveParser().parse_all(case["input"])
        assert [[d.name, d.value] for d in found] == case["ParseAll"]


@pytest.mark.parametrize("key", ["DetectSyntax", "ParseDirective_check"])
def test_detect_directive(key: str) -> None:
    name = "syntax" if key == "DetectSyntax" else "check"
    for case in MISC[key]:
        data = case["input"].encode()
        if "input_hex_prefix" in case:
            data = bytes.fromhex(case["input_hex_prefix"]) + data
        ref, cmdline, location, ok = detect_directive(name, data)
        assert ok == case["ok"], case
        if ok:
            assert ref == case["ref"]
            if "cmdline" in case:
                assert cmdline == case["cmdline"]
            if "line" in case:
                assert location[0] == case["line"]


def test_json_arrays() -> None:
    spec = MISC["json_arrays"]
    for text, expected in spec["valid"]:
        result = parse(f"CMD {text}\n")
        assert result.ast.children[0].args() == expected
    for text in spec["invalid_not_string_array_error"]:
        with pytest.raises(DockerfileParseError, match="arrays must be comprised of strings only"):
            parse(f"CMD {text}\n")


def test_parse_words_and_name_val() -> None:
    for text, expected in MISC["parseWords"]:
        assert parse_words(text, Directives()) == expected
    for case in MISC["parseNameVal"]:
        if "error" in case:
            with pytest.raises(DockerfileParseError, match=case["error"]):
                parse(f"{case['cmd']} {case['input']}\n")
        else:
            node = parse(f"ENV {case['input']}\n").ast.children[0]
            assert node.args() == case["chain"]


def test_empty_continuation_warnings() -> None:
    text = "FROM busybox\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\nRUN non-indented \\\n# this is a comment\n   after-comment\n"
    result = parse(text)
    assert len(result.warnings) == 2
    assert "Empty continuation line found in" in result.warnings[0].short
    assert "will become errors in a future release" in result.warnings[0].detail[0]


def test_line_too_long() -> None:
    with pytest.raises(DockerfileParseError, match="^dockerfile line greater than max allowed size of 65535$"):
        parse("FROM busybox\nRUN " + "x" * 65536 + "\n")


def test_parser_conformance_summary() -> None:
    results = [run_case(n) for n in CASES] + [run_negative(n) for n in NEGATIVE]
    failed = results.count(False)
    record_summary("parser", len(results) - failed, failed)
    assert failed == 0
