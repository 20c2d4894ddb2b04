"""Dockerfile text to AST, following upstream's Parse line by line.

Physical lines are joined into logical ones at the escape token (the continuation line keeps
its leading blanks); comment lines inside a continuation are skipped, and blank ones too, with
a warning. Directives are read at the top. Each logical line becomes an instruction node; RUN,
COPY and ADD lines that open heredocs consume the following lines as bodies.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pybuildkit.frontend.dockerfile.parser.directives import KEY_CHECK, KEY_ESCAPE, KEY_SYNTAX, DirectiveParser, \
    Directives
from pybuildkit.frontend.dockerfile.parser.errors import DockerfileParseError
from pybuildkit.frontend.dockerfile.parser.heredoc import can_contain_heredoc, heredocs_from_line
from pybuildkit.frontend.dockerfile.parser.line_parsers import node_from_line
from pybuildkit.frontend.dockerfile.parser.node import Node
from pybuildkit.frontend.dockerfile.shell.gostrings import trim_left_space, trim_space
from pybuildkit.frontend.dockerfile.shell.lex import ShellError
from pybuildkit.solver.budget import checkpoint

MAX_LINE_BYTES = 65535  # bufio.MaxScanTokenSize - 1
EMPTY_CONTINUATION_URL = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
_CONTINUATION = {
    token: re.compile(rf"([^{re.escape(token)}]){re.escape(token)}[ \t]*\Z|^{re.escape(token)}[ \t]*\Z")
    for token in ("\\", "`")
}


@dataclass
class ParseWarning:
    short: str
    detail: list[str]
    url: str
    start_line: int
    end_line: int


@dataclass
class ParseResult:
    ast: Node
    escape_token: str
    directives: Directives
    warnings: list[ParseWarning]


class _DirectiveState:
    """The directive parser plus what it has set so far (escape token, syntax, check)."""

    def __init__(self) -> None:
        self.parser = DirectiveParser()
        self.found = Directives()
        self.continuation = _CONTINUATION["\\"]

    def possible_directive(self, line: str) -> bool:
        directive = self.parser.parse_line(line)
        if directive is None:
            return False
        if directive.name == KEY_ESCAPE:
            if directive.value not in _CONTINUATION:
                raise DockerfileParseError(f"invalid escape token '{directive.value}' does not match ` or \\")
            self.found.escape_token = directive.value
            self.continuation = _CONTINUATION[directive.value]
        elif directive.name == KEY_SYNTAX:
            self.found.syntax, self.found.syntax_line = directive.value, directive.line
        elif directive.name == KEY_CHECK:
            self.found.check = directive.value
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without its continuation token, whether the logical line ends here)."""
        match = self.continuation.search(line)
        if match is None:
            return line, True
        return line[:match.start()] + (match.group(1) or ""), False


class _Lines:
    """Upstream's line scanner: lines keep their newline; scanning stops at an over-long line."""

    def __init__(self, data: bytes) -> None:
        pieces = data.split(b"\n")
        raw = [piece + b"\n" for piece in pieces[:-1]]
        if pieces[-1]:
            raw.append(pieces[-1])
        self.too_long = False
        for index, line in enumerate(raw):
            if len(line.rstrip(b"\n")) > MAX_LINE_BYTES:
                del raw[index:]
                self.too_long = True
                break
        self.lines = [line.decode("utf-8", "surrogateescape") for line in raw]
        self.index = 0

    def next(self) -> str | None:
        if self.index >= len(self.lines):
            return None
        self.index += 1
        return self.lines[self.index - 1]


def _as_bytes(data: bytes | str) -> bytes:
    if not isinstance(data, str):
        return bytes(data)
    try:
        return data.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return data.encode("utf-8", "replace")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return trim_left_space(line).startswith("#")


def parse(data: bytes | str, *, filename: str = "Dockerfile") -> ParseResult:
    """The AST of a Dockerfile; DockerfileParseError with upstream's message and 1-based lines."""
    scanner = _Lines(_as_bytes(data))
    directives = _DirectiveState()
    root = Node(start_line=-1)
    warnings: list[ParseWarning] = []
    comments: list[str] = []
    current = 0

    def error(message: str, start: int, end: int = 0) -> DockerfileParseError:
        return DockerfileParseError(message, filename=filename, start_line=start, end_line=end)

    def directive_line(token: str) -> bool:
        try:
            return directives.possible_directive(token)
        except DockerfileParseError as exc:
            raise error(exc.message, current + 1) from None

    while (raw := scanner.next()) is not None:
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if _is_comment(raw):
            # As upstream: the text after the first character (not after the '#'), trimmed.
            comment = trim_space(raw[1:])
            comments = comments + [comment] if comment else []
        token = trim_left_space(_trim_newline(raw))
        if directive_line(token):
            comments = comments[:-1]
        current += 1
        start_line = current
        line, end_of_line = directives.trim_continuation("" if _is_comment(token) else token)
        if end_of_line and not line:
            continue
        parts = [line]
        empty_continuation = False
        while not end_of_line and (raw := scanner.next()) is not None:
            token = _trim_newline(raw)
            directive_line(token)
            current += 1
            if _is_comment(raw):
                continue
            if not trim_left_space(token):
                empty_continuation = True
                continue
            token, end_of_line = directives.trim_continuation(token)
            parts.append(token)
        line = "".join(parts)
        checkpoint(len(line))
        if empty_continuation:
            warnings.append(ParseWarning("Empty continuation line found in: " + line,
                                         ["Empty continuation lines will become errors in a future release"],
                                         EMPTY_CONTINUATION_URL, current, current))
        try:
            child = node_from_line(line, directives.found.escape_token, comments)
            heredocs = heredocs_from_line(line) if can_contain_heredoc(child) and "<<" in line else []
        except (DockerfileParseError, ShellError) as exc:
            raise error(exc.message, start_line, current) from None
        for heredoc in heredocs:
            body: list[str] = []
            while (raw := scanner.next()) is not None:
                current += 1
                candidate = _trim_newline(raw)
                if heredoc.chomp:
                    candidate = candidate.lstrip("\t")
                if candidate == heredoc.name:
                    break
                body.append(raw)
            else:
                raise error("unterminated heredoc", start_line, current)
            heredoc.content = "".join(body)
            checkpoint(len(heredoc.content))
            child.heredocs.append(heredoc)
        child.start_line, child.end_line = start_line, current
        if root.start_line < 0:
            root.start_line = start_line
        root.end_line = current
        root.children.append(child)
        comments = []

    if root.start_line < 0:
        raise error("file with no instructions", current)
    if scanner.too_long:
        raise error(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", current + 1)
    return ParseResult(root, directives.found.escape_token, directives.found, warnings)
