"""The AST the parser builds: keywords, flags, directives, comments, heredocs, line handling."""
from __future__ import annotations

from pybuildkit.frontend.dockerfile.parser import (Directives, Heredoc, Node, chomp_heredoc_content, go_quote,
                                                   must_parse_heredoc, parse, split_command)


def instructions(text: str | bytes) -> list[Node]:
    return parse(text).ast.children


def test_keywords_keep_their_case_and_dump_lowercased() -> None:
    node = instructions("from busybox AS base\nRun echo hi\n")[1]
    assert node.value == "Run"
    assert node.dump() == 'run "echo hi"'


def test_unknown_instructions_parse_with_one_empty_argument() -> None:
    assert instructions("FOO bar baz\n")[0].dump() == 'foo ""'


def test_flags_are_kept_raw_and_stop_at_the_first_other_word() -> None:
    node = instructions("COPY --from=build --chown='me:you' -- --notaflag /dst\n")[0]
    assert node.flags == ["--from=build", "--chown=me:you"]
    assert node.args() == ["--notaflag", "/dst"]


def test_split_command_removes_quotes_and_escapes_inside_flags() -> None:
    assert split_command('RUN --mount="type=bind,target=/a b" --x=a\\ b  echo hi  ') == (
        "RUN", ["--mount=type=bind,target=/a b", "--x=a b"], "echo hi")


def test_directives_are_reported_with_the_syntax_line() -> None:
    result = parse("# syntax=docker/dockerfile:1.7 // pinned\n# check=skip=all\n# escape=`\nFROM busybox\n")
    assert result.directives == Directives(escape_token="`", syntax="docker/dockerfile:1.7 // pinned",
                                           check="skip=all", syntax_line=1)
    assert result.escape_token == "`"


def test_a_directive_after_an_instruction_is_an_ordinary_comment() -> None:
    result = parse("FROM busybox\n# escape=`\nRUN a \\\n  b\n")
    assert result.escape_token == "\\"
    assert result.ast.children[1].args() == ["a   b"]


def test_backtick_escape_continues_lines_and_leaves_backslashes_alone() -> None:
    node = instructions("# escape=`\nFROM windows\nRUN dir C:\\ `\n  /s\n")[1]
    assert node.args() == ["dir C:\\   /s"]
    assert (node.start_line, node.end_line) == (3, 4)


def test_comments_before_an_instruction_become_its_prev_comment() -> None:
    children = instructions("# syntax=x\n# the base\n#\n# build args\nARG A=1\nFROM busybox\n")
    assert children[0].prev_comment == ["build args"]
    assert children[1].prev_comment == []


def test_continuation_lines_skip_comments_and_warn_about_blank_lines() -> None:
    result = parse("FROM busybox\nRUN a \\\n# note\n\n  b\n")
    assert result.ast.children[1].args() == ["a   b"]
    assert result.ast.children[1].location() == (2, 5)
    assert [(w.short, w.start_line) for w in result.warnings] == [("Empty continuation line found in: RUN a   b", 5)]


def test_a_byte_order_mark_and_crlf_line_endings_are_ignored() -> None:
    node = instructions(b"\xef\xbb\xbfFROM busybox\r\nRUN echo hi\r\n")[1]
    assert node.original == "RUN echo hi"


def test_invalid_utf8_is_kept_and_dumped_as_go_escapes() -> None:
    node = instructions(b"RUN echo \xff\n")[0]
    assert node.dump() == 'run "echo \\xff"'


def test_str_and_bytes_inputs_give_the_same_tree() -> None:
    text = "FROM busybox\nENV a=b \\\n    c=\"d e\"\nCOPY <<EOF /x\nhi\nEOF\n"
    assert parse(text).ast == parse(text.encode()).ast


def test_heredoc_bodies_are_raw_and_chomped_only_on_request() -> None:
    node = instructions("FROM busybox\nRUN <<-EOT bash\n\techo $HOME\n\tEOT\n")[1]
    assert node.heredocs == [Heredoc(name="EOT", file_descriptor=0, expand=True, chomp=True,
                                     content="\techo $HOME\n")]
    assert chomp_heredoc_content(node.heredocs[0].content) == "echo $HOME\n"
    assert node.location() == (2, 4)


def test_onbuild_copies_carry_their_heredocs() -> None:
    node = instructions("FROM busybox\nONBUILD COPY <<'A' /a\n$x\nA\n")[1]
    assert node.dump() == 'onbuild (copy "<<\'A\'" "/a")'
    assert [(h.name, h.expand, h.content) for h in node.heredocs] == [("A", False, "$x\n")]


def test_heredoc_markers_are_not_looked_for_in_other_instructions() -> None:
    children = instructions("FROM busybox\nLABEL a=<<EOF\nRUN true\n")
    assert children[1].heredocs == []
    assert children[2].value == "RUN"


def test_must_parse_heredoc_reads_broken_quotes_as_no_heredoc() -> None:
    assert must_parse_heredoc("<<'EOF") is None
    assert must_parse_heredoc("3<<\"EOF\"") == Heredoc(name="EOF", file_descriptor=3, expand=False)


def test_go_quote_matches_strconv_quote() -> None:
    assert go_quote('a"b\\c\td\x00\x7f\u00a0é\U0001f600') == '"a\\"b\\\\c\\td\\x00\\x7f\\u00a0é😀"'


def test_a_200_line_dockerfile_parses_into_one_node_per_instruction() -> None:
    lines = ["FROM busybox AS base"]
    for index in range(66):
        lines += [f"ENV VAR{index}=value{index} OTHER{index}=\"x y\"", f"RUN echo {index} && \\",
                  f"    test -n \"$VAR{index}\""]
    result = parse("\n".join(lines) + "\n")
    assert len(result.ast.children) == 1 + 66 * 2
    assert result.ast.location() == (1, 199)
