"""Syntax detection for frontend selection: `# syntax=`, `//syntax=`, JSON, shebangs."""
from __future__ import annotations

from pybuildkit.frontend.dockerfile.parser import DirectiveParser, detect_syntax, parse_directive


def test_the_ref_is_the_first_word_and_the_command_line_the_whole_value() -> None:
    assert detect_syntax("# syntax = docker/dockerfile:1 --opt\nFROM x\n") == (
        "docker/dockerfile:1", "docker/dockerfile:1 --opt", (1, 1), True)


def test_a_shebang_line_is_skipped_and_counted() -> None:
    assert detect_syntax(b"#!/usr/bin/env buildctl\n#syntax=img\n")[2:] == ((2, 2), True)


def test_a_repeated_syntax_directive_still_yields_the_first_one() -> None:
    assert detect_syntax("# syntax=a\n# syntax=b\nFROM x\n")[:2] == ("a", "a")


def test_json_syntax_is_located_on_line_zero() -> None:
    assert detect_syntax('{"syntax": "img:1"}') == ("img:1", "img:1", (0, 0), True)


def test_check_directive_only_counts_in_hash_comments() -> None:
    assert parse_directive("check", "# check=skip=all\n")[:2] == ("skip=all", "skip=all")
    assert parse_directive("check", "//check=skip=all\n")[3] is False


def test_directive_parser_reports_a_duplicate_with_what_it_read_before() -> None:
    found, error = DirectiveParser().parse_all("# escape=`\n# ESCAPE=\\\n")
    assert [(d.name, d.value, d.line) for d in found] == [("escape", "`", 1)]
    assert error is not None and str(error) == "only one escape parser directive can be used"
