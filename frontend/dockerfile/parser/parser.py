"""Dockerfile text to AST, following upstream's parser line by line (continuations, comments,
directives, heredocs, per-instruction argument shapes)."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.parser.directives import Directive, DirectiveParser
from pybuildkit.frontend.dockerfile.parser.node import DockerfileParseError, Heredoc, Node
from pybuildkit.frontend.dockerfile.shell.lex import Lex, ShellError

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_LEADING_TABS = re.compile(r"(?m)^\t+")
_HEREDOC_OPERATOR = re.compile(r"^(\d*)<<(-?)$")
MAX_LINE = 65535
HEREDOC_INSTRUCTIONS = {"add", "copy", "run"}


class _NotStringArray(Exception):
    pass


@dataclass
class ParseWarning:
    short: str
    detail: list[str]
    url: str
    start_line: int
    end_line: int


@dataclass
class Directives:
    escape_token: str = "\\"
    syntax: str | None = None
    check: str | None = None
    syntax_line: int | None = None
    _parser: DirectiveParser = field(default_factory=DirectiveParser)

    def __post_init__(self) -> None:
        self._set_continuation()

    def _set_continuation(self) -> None:
        e = re.escape(self.escape_token)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def possible_directive(self, line: str) -> None:
        directive: Directive | None = self._parser.parse_line(line)
        if directive is None:
            return
        if directive.name == "escape":
            if directive.value not in ("`", "\\"):
                raise DockerfileParseError(f"invalid escape token '{directive.value}' does not match ` or \\")
            self.escape_token = directive.value
            self._set_continuation()
        elif directive.name == "syntax":
            self.syntax, self.syntax_line = directive.value, directive.line
        elif directive.name == "check":
            self.check = directive.value


@dataclass
class ParseResult:
    ast: Node
    escape_token: str
    directives: Directives
    warnings: list[ParseWarning]


def _is_comment(line: str) -> bool:
    return line.rstrip("\r\n").lstrip().startswith("#")


def _trim_continuation(line: str, d: Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub(r"\1", line), False
    return line, True


def split_lines(text: str) -> list[str]:
    """Lines with their newline kept, as upstream's scanner yields them."""
    lines = text.splitlines(keepends=True) if text else []
    out = []
    for line in lines:  # splitlines also splits on \r, \v, \f...: re-join to split on \n only
        if out and not out[-1].endswith("\n"):
            out[-1] += line
        else:
            out.append(line)
    return out


def parse(data: bytes | str, *, filename: str = "Dockerfile") -> ParseResult:
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    d = Directives()
    root = Node(start_line=-1)
    warnings: list[ParseWarning] = []
    comments: list[str] = []
    lines = split_lines(text)
    index = 0
    current = 0

    def err(message: str, start: int, end: int = 0) -> DockerfileParseError:
        return DockerfileParseError(message, filename=filename, start_line=start, end_line=end)

    while index < len(lines):
        raw = lines[index]
        index += 1
        if len(raw.rstrip("\n").encode("utf-8", "surrogateescape")) > MAX_LINE:
            raise err(f"dockerfile line greater than max allowed size of {MAX_LINE}", current)
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if _is_comment(raw):
            comment = raw.rstrip("\r\n").lstrip()[1:].strip()
            comments = comments + [comment] if comment else []
        token = raw.rstrip("\r\n").lstrip()
        try:
            d.possible_directive(token)
        except DockerfileParseError as exc:
            raise err(exc.message, current) from None
        line_text = "" if token.startswith("#") else token
        current += 1
        start_line = current
        line_text, end_of_line = _trim_continuation(line_text, d)
        if end_of_line and not line_text:
            continue
        buf = [line_text]
        has_empty_continuation = False
        while not end_of_line and index < len(lines):
            raw = lines[index]
            index += 1
            token = raw.rstrip("\r\n")
            try:
                d.possible_directive(token)
            except DockerfileParseError as exc:
                raise err(exc.message, current) from None
            current += 1
            if _is_comment(raw):
                continue
            if not token.strip():
                has_empty_continuation = True
                continue
            continued, end_of_line = _trim_continuation(token, d)
            buf.append(continued)
        line = "".join(buf)
        if has_empty_continuation:
            warnings.append(ParseWarning(
                "Empty continuation line found in: " + line,
                ["Empty continuation lines will become errors in a future release"],
                "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/", current, current))
        try:
            child = node_from_line(line, d, comments)
        except DockerfileParseError as exc:
            raise err(exc.message, start_line, current) from None
        if _can_contain_heredoc(child) and "<<" in line:
            try:
                heredocs = heredocs_from_line(line)
            except (ShellError, DockerfileParseError) as exc:
                raise err(exc.message, start_line, current) from None
            for heredoc in heredocs:
                terminated = False
                content: list[str] = []
                while index < len(lines):
                    body = lines[index]
                    index += 1
                    current += 1
                    candidate = body.rstrip("\r\n")
                    if heredoc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == heredoc.name:
                        terminated = True
                        break
                    content.append(body)
                if not terminated:
                    raise err("unterminated heredoc", start_line, current)
                heredoc.content = "".join(content)
                child.heredocs.append(heredoc)
        child.start_line, child.end_line = start_line, current
        if root.start_line < 0:
            root.start_line = start_line
        root.end_line = current
        root.children.append(child)
        comments = []
    if root.start_line < 0:
        raise err("file with no instructions", current)
    return ParseResult(root, d.escape_token, d, warnings)


def _can_contain_heredoc(node: Node) -> bool:
    if node.value.lower() == "onbuild" and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value.lower() in HEREDOC_INSTRUCTIONS and not node.attributes.get("json")


def node_from_line(line: str, d: Directives, comments: list[str]) -> Node:
    cmd, flags, args = split_command(line)
    parser = _DISPATCH.get(cmd.lower(), _parse_ignore)
    next_node, attrs = parser(args, d)
    return Node(value=cmd, original=line, flags=flags, next=next_node, attributes=attrs or {},
                prev_comment=list(comments))


def split_command(line: str) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    args, flags = "", []
    if len(parts) == 2:
        args, flags = extract_builder_flags(parts[1])
    return parts[0], flags, args.strip()


def extract_builder_flags(line: str) -> tuple[str, list[str]]:
    IN_SPACES, IN_WORD, IN_QUOTE = 0, 1, 2
    words: list[str] = []
    phase = IN_SPACES
    word = ""
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos != n else ""
        if phase == IN_SPACES:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = IN_WORD
        if phase in (IN_WORD, IN_QUOTE) and pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == IN_WORD:
            if ch.isspace():
                phase = IN_SPACES
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                word = ""
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = IN_QUOTE
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word += ch
            pos += 1
            continue
        if phase == IN_QUOTE:
            if ch == quote:
                phase = IN_WORD
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    phase = IN_WORD
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word += ch
        pos += 1
    return "", words


def parse_words(rest: str, d: Directives) -> list[str]:
    IN_SPACES, IN_WORD, IN_QUOTE = 0, 1, 2
    words: list[str] = []
    phase = IN_SPACES
    word = ""
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    escape = d.escape_token
    while pos <= n:
        ch = rest[pos] if pos != n else ""
        if phase == IN_SPACES:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            phase = IN_WORD
        if phase in (IN_WORD, IN_QUOTE) and pos == n:
            if blank_ok or word:
                words.append(word)
            break
        if phase == IN_WORD:
            if ch.isspace():
                phase = IN_SPACES
                if blank_ok or word:
                    words.append(word)
                word = ""
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = IN_QUOTE
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
            pos += 1
            continue
        if phase == IN_QUOTE:
            if ch == quote:
                phase = IN_WORD
            if ch == escape and quote != "'":
                if pos + 1 == n:
                    phase = IN_WORD
                    pos += 1
                    continue
                pos += 1
                word += ch
                ch = rest[pos]
            word += ch
        pos += 1
    return words


def _key_value(key: str, value: str, sep: str) -> Node:
    return Node(value=key, next=Node(value=value, next=Node(value=sep)))


def _parse_name_val(rest: str, key: str, d: Directives) -> Node | None:
    words = parse_words(rest, d)
    if not words:
        return None
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileParseError(f"{key} must have two arguments")
        return _key_value(parts[0], parts[1], "")
    root: Node | None = None
    tail: Node | None = None
    for word in words:
        if "=" not in word:
            raise DockerfileParseError(
                f"Syntax error - can't find = in {_go_quote_plain(word)}. Must be of the form: name=value")
        name, _, value = word.partition("=")
        node = _key_value(name, value, "=")
        if root is None:
            root = node
        if tail is not None:
            tail.next = node
        tail = node.next.next  # type: ignore[union-attr]
    return root


def _go_quote_plain(text: str) -> str:
    from pybuildkit.frontend.dockerfile.parser.node import go_quote

    return go_quote(text)


def _parse_env(rest: str, d: Directives):
    return _parse_name_val(rest, "ENV", d), None


def _parse_label(rest: str, d: Directives):
    return _parse_name_val(rest, "LABEL", d), None


def _chain(values: list[str]) -> Node | None:
    root: Node | None = None
    prev: Node | None = None
    for value in values:
        node = Node(value=value)
        if prev is None:
            root = node
        else:
            prev.next = node
        prev = node
    return root


def _parse_name_or_name_val(rest: str, d: Directives):
    return _chain(parse_words(rest, d)), None


def _parse_whitespace_delimited(rest: str, d: Directives):
    if rest == "":
        return None, None
    return _chain(_WHITESPACE.split(rest)), None


def _parse_string(rest: str, d: Directives):
    if rest == "":
        return None, None
    return Node(value=rest), None


def _parse_json(rest: str):
    rest = rest.lstrip()
    if not rest.startswith("["):
        raise ValueError("not a JSON array")
    try:
        values = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(values, list):
        raise ValueError("not a JSON array")
    if any(not isinstance(v, str) for v in values):
        raise _NotStringArray()
    return _chain(values), {"json": True}


def _reject_constant(name: str):
    raise ValueError(f"invalid JSON constant {name}")


_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def _parse_maybe_json(rest: str, d: Directives):
    if rest == "":
        return None, None
    try:
        return _parse_json(rest)
    except _NotStringArray:
        raise DockerfileParseError(_NOT_STRINGS) from None
    except ValueError:
        return Node(value=rest), None


def _parse_maybe_json_to_list(rest: str, d: Directives):
    try:
        return _parse_json(rest)
    except _NotStringArray:
        raise DockerfileParseError(_NOT_STRINGS) from None
    except ValueError:
        return _parse_whitespace_delimited(rest, d)


def _parse_health(rest: str, d: Directives):
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    following = sep
    while following < len(rest) and rest[following].isspace():
        following += 1
    if sep == 0:
        return None, None
    cmd, attrs = _parse_maybe_json(rest[following:], d)
    return Node(value=rest[:sep], next=cmd), attrs


def _parse_sub_command(rest: str, d: Directives):
    if rest == "":
        return None, None
    child = node_from_line(rest, d, [])
    return Node(children=[child]), None


def _parse_ignore(rest: str, d: Directives):
    return Node(), None


_DISPATCH: dict[str, Callable] = {
    "add": _parse_maybe_json_to_list, "arg": _parse_name_or_name_val, "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list, "entrypoint": _parse_maybe_json, "env": _parse_env,
    "expose": _parse_whitespace_delimited, "from": _parse_whitespace_delimited, "healthcheck": _parse_health,
    "label": _parse_label, "maintainer": _parse_string, "onbuild": _parse_sub_command, "run": _parse_maybe_json,
    "shell": _parse_maybe_json, "stopsignal": _parse_string, "user": _parse_string,
    "volume": _parse_maybe_json_to_list, "workdir": _parse_string,
}


# ---------------------------------------------------------------- heredocs


def _heredoc_from_match(match: re.Match[str] | None, expand: bool) -> Heredoc | None:
    if match is None:
        return None
    return _heredoc_from_parts(match.group(1), match.group(2), match.group(3), expand)


def _heredoc_from_parts(fd_text: str, dash: str, rest: str, expand: bool) -> Heredoc | None:
    fd = int(fd_text) if fd_text else 0
    chomp = dash == "-"
    if not rest:
        return None
    lex = Lex("\\")
    lex.skip_unset_env = True
    words = lex.process_words(rest, {})
    if len(words) != 1:
        return None
    lex.raw_quotes = True
    raw_words = lex.process_words(rest, {})
    if len(raw_words) != len(words):
        raise DockerfileParseError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word, raw = words[0], raw_words[0]
    quoted = (word.count("'") + word.count('"')) != (raw.count("'") + raw.count('"'))
    return Heredoc(name=word, file_descriptor=fd, expand=expand and not quoted, chomp=chomp)


def parse_heredoc(src: str) -> Heredoc | None:
    return _heredoc_from_match(_HEREDOC.match(src), True)


def must_parse_heredoc(src: str) -> Heredoc | None:
    try:
        return parse_heredoc(src)
    except (ShellError, DockerfileParseError):
        return None


def heredocs_from_line(line: str) -> list[Heredoc]:
    lex = Lex("\\")
    lex.raw_quotes = True
    lex.raw_escapes = True
    lex.skip_unset_env = True
    try:
        words = lex.process_words(line, {})
    except ShellError:
        words = []
    docs = []
    index = 0
    while index < len(words):
        word = words[index]
        operator = _HEREDOC_OPERATOR.match(word)
        if operator and index + 1 < len(words):
            # `<< EOF` / `<<- EOF`: the name is the next word, taken literally (`<< -EOF` names -EOF)
            heredoc = _heredoc_from_parts(operator.group(1), operator.group(2), words[index + 1], True)
            index += 2
        else:
            heredoc = parse_heredoc(word)
            index += 1
        if heredoc is not None:
            docs.append(heredoc)
    return docs


def chomp_heredoc_content(src: str) -> str:
    return _LEADING_TABS.sub("", src)
