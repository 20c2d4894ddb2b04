"""Parser directives (`# escape=`, `# syntax=`, `# check=`) at the top of a Dockerfile."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.parser.node import DockerfileParseError

VALID = ("escape", "syntax", "check")


@dataclass
class Directive:
    name: str
    value: str
    line: int


@dataclass
class DirectiveParser:
    comment: str = "#"
    line: int = 0
    done: bool = False
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.regex = re.compile("^" + re.escape(self.comment) + r"[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")

    def parse_line(self, line: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        match = self.regex.match(line)
        if not match:
            self.done = True
            return None
        name = match.group(1).lower()
        if name not in VALID:
            self.done = True
            return None
        if name in self.seen:
            raise DockerfileParseError(f"only one {name} parser directive can be used", start_line=self.line)
        self.seen.add(name)
        return Directive(name, match.group(2), self.line)

    def parse_all(self, text: str) -> list[Directive]:
        out = []
        for line in text.split("\n"):
            directive = self.parse_line(line.rstrip("\r\n"))
            if directive is not None:
                out.append(directive)
            if self.done:
                break
        return out


def _discard_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def detect_directive(key: str, data: bytes | str) -> tuple[str, str, tuple[int, int] | None, bool]:
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    text = _discard_bom(text)
    line = 0
    if text.startswith("#!"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        line = 1
    prefixes = ["#", "//"] if key == "syntax" else ["#"]
    for prefix in prefixes:
        parser = DirectiveParser(comment=prefix, line=line)
        try:
            found = parser.parse_all(text)
        except DockerfileParseError:
            found = []
        for directive in found:
            if directive.name == key:
                return directive.value.split(" ", 1)[0], directive.value, (directive.line, directive.line), True
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get(key), str):
        return document[key], document[key], (line, line), True
    return "", "", None, False


def detect_syntax(data: bytes | str) -> tuple[str, str, tuple[int, int] | None, bool]:
    return detect_directive("syntax", data)
