"""Parser directives (`# escape=`, `# syntax=`, `# check=`) and syntax detection.

Directives are only recognised in the block of `#name=value` lines at the very top: the first
line that is not a known directive (a blank line, an instruction, any other comment) ends it.
DetectSyntax also accepts `//syntax=` lines and a JSON object with a "syntax" key, after an
optional `#!` shebang line, so that frontends for other formats can pick their image.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.parser.errors import DockerfileParseError

KEY_SYNTAX = "syntax"
KEY_CHECK = "check"
KEY_ESCAPE = "escape"
VALID_DIRECTIVES = frozenset({KEY_SYNTAX, KEY_CHECK, KEY_ESCAPE})
_BOM = b"\xef\xbb\xbf"
_GO_SPACE = r"[\t\n\f\r ]"  # RE2's \s


def _directive_regex(comment: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(comment)}{_GO_SPACE}*([a-zA-Z][a-zA-Z0-9]*){_GO_SPACE}*="
                      rf"{_GO_SPACE}*(.+?){_GO_SPACE}*\Z")


_REGEXES = {"#": _directive_regex("#"), "//": _directive_regex("//")}


@dataclass
class Directives:
    """The directives a parse found; `syntax` and `check` are the full values as written."""

    escape_token: str = "\\"
    syntax: str | None = None
    check: str | None = None
    syntax_line: int | None = None


@dataclass(frozen=True)
class Directive:
    name: str
    value: str
    line: int

    def location(self) -> tuple[int, int]:
        return self.line, self.line


@dataclass
class DirectiveParser:
    """Reads lines one by one, counting them, until the directive block ends."""

    comment: str = "#"
    line: int = 0
    done: bool = False
    seen: set[str] = field(default_factory=set)

    def parse_line(self, line: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        regex = _REGEXES.get(self.comment) or _directive_regex(self.comment)
        match = regex.match(line)
        if match is None:
            self.done = True
            return None
        name = match.group(1).lower()
        if name not in VALID_DIRECTIVES:
            self.done = True
            return None
        if name in self.seen:
            raise DockerfileParseError(f"only one {name} parser directive can be used", start_line=self.line)
        self.seen.add(name)
        return Directive(name, match.group(2), self.line)

    def parse_all(self, text: str) -> tuple[list[Directive], DockerfileParseError | None]:
        """Directives of the leading block, and the error that stopped reading, if any."""
        found: list[Directive] = []
        for line in _scan_lines(text):
            if self.done:
                break
            try:
                directive = self.parse_line(line)
            except DockerfileParseError as exc:
                return found, exc
            if directive is not None:
                found.append(directive)
        return found, None


def _scan_lines(text: str) -> list[str]:
    """bufio.ScanLines: split on \\n, drop one trailing \\r, no empty last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _to_text(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    return bytes(data)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _from_parser(key: str, text: str, parser: DirectiveParser) -> tuple[str, str, tuple[int, int] | None, bool]:
    directives, _ = parser.parse_all(text)
    for directive in directives:
        if directive.name == key:
            ref = directive.value.split(" ", 1)[0]
            return ref, directive.value, directive.location(), True
    return "", "", None, False


def _parse_directive(key: str, data: bytes | str, any_format: bool) -> tuple[str, str, tuple[int, int] | None, bool]:
    raw = _to_text(data)
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    first, newline, rest = raw.partition(b"\n")
    line = 0
    if first.startswith(b"#!"):
        raw, line = rest, 1
    text = _decode(raw)
    found = _from_parser(key, text, DirectiveParser(line=line))
    if found[3] or not any_format:
        return found
    found = _from_parser(key, text, DirectiveParser(comment="//", line=line))
    if found[3]:
        return found
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "", "", None, False
    if isinstance(document, dict) and isinstance(document.get(key), str):
        value = re.sub("[\ud800-\udfff]", "\ufffd", document[key])
        return value, value, (line, line), True
    return "", "", None, False


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def detect_syntax(data: bytes | str) -> tuple[str, str, tuple[int, int] | None, bool]:
    """(image ref, full directive value, (line, line), found) from `# syntax=`, `//syntax=` or JSON."""
    return _parse_directive(KEY_SYNTAX, data, True)


def parse_directive(key: str, data: bytes | str) -> tuple[str, str, tuple[int, int] | None, bool]:
    """Like detect_syntax for any directive, but only the `# key=` form counts."""
    return _parse_directive(key, data, False)


def detect_directive(key: str, data: bytes | str) -> tuple[str, str, tuple[int, int] | None, bool]:
    """DetectSyntax's rules for `syntax`, ParseDirective's (only `#`) for other keys."""
    return _parse_directive(key, data, key == KEY_SYNTAX)
