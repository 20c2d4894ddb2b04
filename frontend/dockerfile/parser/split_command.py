"""Split an instruction line into keyword, `--flags` and the rest (upstream's split_command.go).

Flags are the leading words that start with `--`; a bare `--` ends them. Quotes inside a flag
are removed and a backslash escapes the next character; the flags stay raw strings
("--from=x") until the instructions layer parses them.
"""
from __future__ import annotations

import re
from enum import Enum

from pybuildkit.frontend.dockerfile.shell.gostrings import is_space, trim_space

WHITESPACE = re.compile(r"[\t\v\f\r ]+")


class _Phase(Enum):
    SPACES = 0
    WORD = 1
    QUOTE = 2


def split_command(line: str) -> tuple[str, list[str], str]:
    """(keyword as written, flags, arguments with surrounding space trimmed)."""
    parts = WHITESPACE.split(trim_space(line), maxsplit=1)
    args: str = ""
    flags: list[str] = []
    if len(parts) == 2:
        args, flags = extract_builder_flags(parts[1])
    return parts[0], flags, trim_space(args)


def extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """(the line after the flags, the flags)."""
    words: list[str] = []
    phase = _Phase.SPACES
    word: list[str] = []
    quote = ""
    blank_ok = False
    size = len(line)
    pos = 0
    while pos <= size:
        ch = line[pos] if pos != size else ""
        if phase is _Phase.SPACES:
            if pos == size:
                break
            if is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == size or line[pos + 1] != "-":
                return line[pos:], words
            phase = _Phase.WORD
        if pos == size:  # inside a word or quote at the end of the line
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase is _Phase.WORD:
            if is_space(ch):
                phase = _Phase.SPACES
                text = "".join(word)
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = _Phase.QUOTE
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == size:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # inside a quote
        if ch == quote:
            phase = _Phase.WORD
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == size:
                phase = _Phase.WORD
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words
