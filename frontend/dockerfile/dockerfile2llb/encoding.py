"""Invalid UTF-8 in a Dockerfile's instructions is an error at its place.

The parser keeps undecodable bytes (upstream's AST dump shows them as Go escapes), but nothing
after it can: LLB and image configs are protobuf and JSON strings, which must be UTF-8, and would
fail later with no line to point at. Comments are skipped, as they never reach either.
"""
from __future__ import annotations

from pybuildkit.frontend.dockerfile.instructions import DockerfileError
from pybuildkit.frontend.dockerfile.parser import Node


def check_utf8(dockerfile: bytes, ast: Node, filename: str) -> None:
    """Raise a DockerfileError naming line, column and bytes of the first invalid UTF-8 sequence."""
    if dockerfile.isascii():
        return
    lines = dockerfile.split(b"\n")
    for child in ast.children:
        for number in range(child.start_line, child.end_line + 1):
            if not 0 < number <= len(lines):
                continue
            line = lines[number - 1]
            # '#' lines are comments, except in heredoc bodies, where they are content
            if line.isascii() or (not child.heredocs and line.lstrip(b" \t").startswith(b"#")):
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = line[exc.start:exc.end]
                shown = line[max(0, exc.start - 40):exc.start + 40].decode("utf-8", "backslashreplace")
                raise DockerfileError(
                    f"invalid UTF-8 byte {bad.hex(' ')} at line {number}, column {exc.start + 1}: {shown}",
                    filename=filename, start_line=number,
                    hint="save the Dockerfile as UTF-8") from None
