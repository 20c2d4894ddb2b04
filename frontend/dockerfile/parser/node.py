"""The Dockerfile AST node and its dump format (upstream's Node.Dump, byte for byte)."""
from __future__ import annotations

from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.shell.gostrings import go_quote, trim_space

__all__ = ["Heredoc", "Node", "go_quote"]


@dataclass
class Heredoc:
    """One `<<NAME` body. `content` is raw: `<<-` tab stripping happens when it is used."""

    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@dataclass
class Node:
    """An instruction (`value` is its keyword, arguments follow through `next`), or an argument.

    ONBUILD's argument is a node whose only child is the wrapped instruction.
    """

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
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
        """The values along the `next` chain."""
        out = []
        node = self.next
        while node is not None:
            out.append(node.value)
            node = node.next
        return out

    def dump(self) -> str:
        parts = [self.value.lower()]
        if self.flags:
            parts.append(" [" + " ".join(go_quote(flag) for flag in self.flags) + "]")
        for child in self.children:
            parts.append("(" + child.dump() + ")\n")
        node = self.next
        while node is not None:
            parts.append(" " + (node.dump() if node.children else go_quote(node.value)))
            node = node.next
        return trim_space("".join(parts))
