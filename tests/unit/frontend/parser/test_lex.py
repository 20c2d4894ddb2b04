"""Lexer behaviour beyond the upstream tables: heredoc words, raw modes, Go-specific edges."""
from __future__ import annotations

import pytest

from pybuildkit.frontend.dockerfile.shell import Lex, ShellError


def lex(**flags: bool) -> Lex:
    lexer = Lex("\\")
    for name, value in flags.items():
        setattr(lexer, name, value)
    return lexer


def test_heredoc_markers_keep_the_blanks_after_them_in_one_word() -> None:
    assert lex().process_words("cat << EOF > out", {}) == ["cat", "<< EOF", ">", "out"]
    assert lex().process_words("cat <<- EOF", {}) == ["cat", "<<- EOF"]


def test_skip_unset_env_leaves_unknown_references_as_written() -> None:
    assert lex(skip_unset_env=True).process_word("$A ${B} ${C:-x} ${D/a/b} $E", {"E": "e"}) == \
        "$A ${B} ${C:-x} ${D/a/b} e"


def test_raw_quotes_and_raw_escapes_keep_their_characters() -> None:
    assert lex(raw_quotes=True, raw_escapes=True).process_word("'a b' \"c\\\"d\" e\\ f", {}) == \
        "'a b' \"c\\\"d\" e\\ f"


def test_skip_process_quotes_expands_inside_quotes_and_keeps_them() -> None:
    assert lex(skip_process_quotes=True).process_word("echo '$X' \"$X\"", {"X": "1"}) == "echo '1' \"1\""


def test_the_backtick_escape_token_escapes_and_backslash_is_plain() -> None:
    assert Lex("`").process_word("C:\\dir `$X", {"X": "1"}) == "C:\\dir $X"


def test_errors_name_the_word_as_go_quotes_it() -> None:
    with pytest.raises(ShellError) as info:
        Lex().process_word('say "hi', {})
    assert str(info.value) == ('failed to process "say \\"hi": '
                               "unexpected end of statement while looking for matching double-quote")


def test_question_mark_patterns_do_not_match_a_newline() -> None:
    assert Lex().process_word("${V#?}", {"V": "\nx"}) == "\nx"


def test_replace_all_expands_dollar_zero_like_go() -> None:
    assert Lex().process_word("${V//o/['$0']}", {"V": "foo"}) == "f[o][o]"
    assert Lex().process_word("${V/o/['$0']}", {"V": "foo"}) == "f[$0]o"


def test_ascii_separators_are_not_word_breaks() -> None:
    assert Lex().process_words("a\x1cb c", {}) == ["a\x1cb", "c"]


def test_unquoted_expansions_are_split_and_quoted_ones_are_not() -> None:
    env = {"X": " 1  2 "}
    assert Lex().process_words("a${X}b \"$X\"", env) == ["a", "1", "2", "b", " 1  2 "]


def test_a_colon_with_a_pattern_modifier_is_unsupported() -> None:
    with pytest.raises(ShellError, match=r"unsupported modifier \(:#\)"):
        Lex().process_word("${A:#x}", {"A": "x"})
