"""The Dockerfile AST node and its dump format (upstream's Node.Dump, byte for byte)."""
from __future__ import annotations

from dataclasses import dataclass, field

from pybuildkit.solver.errors import BuildError


@dataclass
class Heredoc:
    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@dataclass
class Node:
    value: str = ""
    next: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    prev_comment: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0

    def location(self) -> tuple[int, int]:
        return self.start_line, self.end_line

    def args(self) -> list[str]:
        out = []
        node = self.next
        while node is not None:
            out.append(node.value)
            node = node.next
        return out

    def dump(self) -> str:
        text = self.value.lower()
        if self.flags:
            text += " [" + " ".join(go_quote(f) for f in self.flags) + "]"
        for child in self.children:
            text += "(" + child.dump() + ")\n"
        node = self.next
        while node is not None:
            text += " " + (node.dump() if node.children else go_quote(node.value))
            node = node.next
        return text.strip()


class DockerfileParseError(BuildError):
    def __init__(self, message: str, *, filename: str = "Dockerfile", start_line: int = 0, end_line: int = 0) -> None:
        super().__init__(message)
        self.filename = filename
        self.start_line = start_line
        self.end_line = end_line or start_line


_SIMPLE = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
           "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (surrogate-escaped bytes print as \\xNN, like invalid UTF-8 in Go)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SIMPLE:
            out.append(_SIMPLE[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x80 or (ch.isprintable() and code != 0xFEFF):
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
