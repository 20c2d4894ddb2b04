"""Heredoc markers (`<<EOF`, `<<-EOF`, `3<<'EOF'`) in RUN, COPY and ADD lines.

A line is lexed into words with quotes, escapes and unset `$VARS` all kept; each word that
looks like `[fd]<<[-]NAME` with NAME lexing to exactly one word starts a heredoc. Whether the
body is expanded later is decided by lexing NAME twice, with and without raw quotes: if quote
characters survive in one but not the other, part of the name was quoted (as in sh, no
expansion). Bodies are read by the parser; `<<-` tab stripping happens when they are used.
"""
from __future__ import annotations

import re

from pybuildkit.frontend.dockerfile.parser.errors import DockerfileParseError
from pybuildkit.frontend.dockerfile.parser.node import Heredoc, Node
from pybuildkit.frontend.dockerfile.shell.lex import Lex, ShellError

HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
HEREDOC_COMPOUND_INSTRUCTIONS = frozenset({"onbuild"})
_HEREDOC = re.compile(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_MAX_FD = 2**64 - 1


def can_contain_heredoc(node: Node) -> bool:
    """RUN/COPY/ADD in shell form, directly or wrapped in ONBUILD."""
    if node.value.lower() in HEREDOC_COMPOUND_INSTRUCTIONS and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value.lower() in HEREDOC_INSTRUCTIONS and not node.attributes.get("json")


def _count_quotes(word: str) -> int:
    return word.count("'") + word.count('"')


def _heredoc_from_match(match: re.Match[str] | None) -> Heredoc | None:
    if match is None:
        return None
    fd_text, dash, rest = match.groups()
    if not rest:
        return None
    fd = int(fd_text) if fd_text else 0
    lex = Lex("\\")
    lex.skip_unset_env = True
    words = lex.process_words(rest, {})
    if len(words) != 1:
        return None
    lex.raw_quotes = True
    raw_words = lex.process_words(rest, {})
    if len(raw_words) != len(words):
        raise DockerfileParseError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word = words[0]
    return Heredoc(name=word, file_descriptor=fd if fd <= _MAX_FD else 0,
                   expand=_count_quotes(word) == _count_quotes(raw_words[0]), chomp=dash == "-")


def parse_heredoc(src: str) -> Heredoc | None:
    """The heredoc a single word starts, None if it is not one; ShellError for a broken quote."""
    return _heredoc_from_match(_HEREDOC.match(src))


def must_parse_heredoc(src: str) -> Heredoc | None:
    """parse_heredoc, with errors read as "not a heredoc"."""
    try:
        return parse_heredoc(src)
    except (ShellError, DockerfileParseError):
        return None


def heredocs_from_line(line: str) -> list[Heredoc]:
    """Every heredoc an instruction line starts, in order (bodies not read yet)."""
    lex = Lex("\\")
    lex.raw_quotes = True
    lex.raw_escapes = True
    lex.skip_unset_env = True
    try:
        words = lex.process_words(line, {})
    except ShellError:
        return []
    docs = []
    for word in words:
        heredoc = parse_heredoc(word)
        if heredoc is not None:
            docs.append(heredoc)
    return docs


def chomp_heredoc_content(src: str) -> str:
    """What `<<-` means: leading tabs removed from every line."""
    return _LEADING_TABS.sub("", src)
