"""Parse errors carry upstream's message, the file name and the 1-based lines they concern."""
from __future__ import annotations

import pytest

from pybuildkit.frontend.dockerfile.parser import DockerfileParseError, parse
from pybuildkit.solver.errors import BuildError


def parse_error(text: str | bytes, filename: str = "Dockerfile") -> DockerfileParseError:
    with pytest.raises(DockerfileParseError) as info:
        parse(text, filename=filename)
    return info.value


def test_unterminated_heredoc_spans_from_the_instruction_to_the_end_of_the_file() -> None:
    error = parse_error("FROM busybox\nRUN <<EOF\necho hi\necho there\n")
    assert str(error) == "unterminated heredoc"
    assert (error.start_line, error.end_line) == (2, 4)


def test_an_invalid_escape_directive_names_the_token_and_its_line() -> None:
    error = parse_error("# syntax=docker/dockerfile:1\n# escape=x\nFROM busybox\n")
    assert str(error) == "invalid escape token 'x' does not match ` or \\"
    assert (error.start_line, error.end_line) == (2, 2)


def test_a_repeated_directive_is_refused_at_its_second_occurrence() -> None:
    error = parse_error("# check=skip=all\n# CHECK=error=true\nFROM busybox\n")
    assert str(error) == "only one check parser directive can be used"
    assert error.start_line == 2


def test_an_empty_file_has_no_instructions() -> None:
    error = parse_error(b"")
    assert str(error) == "file with no instructions"
    assert error.start_line == 0


def test_comments_and_blank_lines_alone_have_no_instructions_and_point_at_the_last_line() -> None:
    error = parse_error("# just a comment\n\n   # another\n")
    assert str(error) == "file with no instructions"
    assert error.start_line == 3


def test_env_with_a_key_only_is_refused_on_its_line() -> None:
    error = parse_error("FROM busybox\nENV PATH\n")
    assert str(error) == "ENV must have two arguments"
    assert (error.start_line, error.end_line) == (2, 2)


def test_a_label_word_without_equals_is_quoted_as_go_would() -> None:
    error = parse_error('FROM busybox\nLABEL a=b "c d"\n')
    assert str(error) == 'Syntax error - can\'t find = in "\\"c d\\"". Must be of the form: name=value'


def test_a_json_array_of_non_strings_is_an_error_covering_the_continued_lines() -> None:
    error = parse_error('FROM busybox\nCMD ["echo", \\\n  42]\n')
    assert str(error) == "when using JSON array syntax, arrays must be comprised of strings only"
    assert (error.start_line, error.end_line) == (2, 3)


def test_a_line_over_64k_is_refused_at_that_line() -> None:
    error = parse_error("FROM busybox\nRUN true\nRUN " + "x" * 65536 + "\n")
    assert str(error) == "dockerfile line greater than max allowed size of 65535"
    assert error.start_line == 3


def test_a_line_of_exactly_65535_bytes_is_accepted() -> None:
    result = parse("FROM busybox\nRUN " + "x" * (65535 - 4) + "\n")
    assert len(result.ast.children[1].original) == 65535


def test_errors_carry_the_file_name_and_are_build_errors() -> None:
    error = parse_error("FROM busybox\nRUN <<EOF\n", filename="build/Containerfile")
    assert error.filename == "build/Containerfile"
    assert isinstance(error, BuildError)
