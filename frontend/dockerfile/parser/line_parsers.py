"""Per-instruction argument shapes (upstream's line_parsers.go and its dispatch table).

Each parser turns the text after the keyword and flags into the `next` chain of the instruction
node, plus attributes ({"json": True} for the exec/JSON form). Quotes are kept in the values:
unquoting and variable expansion happen later, with the shell lexer.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import Enum

from pybuildkit.frontend.dockerfile.parser.errors import DockerfileParseError
from pybuildkit.frontend.dockerfile.parser.node import Node
from pybuildkit.frontend.dockerfile.parser.split_command import WHITESPACE, split_command
from pybuildkit.frontend.dockerfile.shell.gostrings import go_quote, is_space, trim_left_space

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"
_SURROGATES = re.compile("[\ud800-\udfff]")

Attributes = dict[str, bool] | None
LineParser = Callable[[str, str], tuple[Node | None, Attributes]]


class _NotJSONArray(Exception):
    """Not a JSON string array: the caller falls back to the shell/whitespace form."""


class _Phase(Enum):
    SPACES = 0
    WORD = 1
    QUOTE = 2


def parse_words(rest: str, escape_token: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words."""
    words: list[str] = []
    phase = _Phase.SPACES
    word: list[str] = []
    quote = ""
    blank_ok = False
    size = len(rest)
    pos = 0
    while pos <= size:
        ch = rest[pos] if pos != size else ""
        if phase is _Phase.SPACES:
            if pos == size:
                break
            if is_space(ch):
                pos += 1
                continue
            phase = _Phase.WORD
        if pos == size:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase is _Phase.WORD:
            if is_space(ch):
                phase = _Phase.SPACES
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = _Phase.QUOTE
            if ch == escape_token:
                if pos + 1 == size:
                    pos += 1
                    continue  # an escape at the very end is dropped
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = _Phase.WORD
        if ch == escape_token and quote != "'":
            if pos + 1 == size:
                phase = _Phase.WORD
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


def _chain(values: list[str]) -> Node | None:
    root: Node | None = None
    for value in reversed(values):
        root = Node(value=value, next=root)
    return root


def _key_value(key: str, value: str, sep: str) -> Node:
    return Node(value=key, next=Node(value=value, next=Node(value=sep)))


def parse_name_val(rest: str, key: str, escape_token: str) -> Node | None:
    """ENV/LABEL: `key value` (legacy, one pair) or `k=v k2=v2`, as (key, value, separator) triples."""
    words = parse_words(rest, escape_token)
    if not words:
        return None
    if "=" not in words[0]:
        parts = WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileParseError(f"{key} must have two arguments")
        return _key_value(parts[0], parts[1], "")
    triples: list[str] = []
    for word in words:
        if "=" not in word:
            raise DockerfileParseError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        name, _, value = word.partition("=")
        triples += [name, value, "="]
    return _chain(triples)


def _parse_env(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    return parse_name_val(rest, "ENV", escape_token), None


def _parse_label(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    return parse_name_val(rest, "LABEL", escape_token), None


def _parse_name_or_name_val(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    return _chain(parse_words(rest, escape_token)), None


def _parse_whitespace_delimited(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    if rest == "":
        return None, None
    return _chain(WHITESPACE.split(rest)), None


def _parse_string(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    if rest == "":
        return None, None
    return Node(value=rest), None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json_array(rest: str) -> list[str]:
    """The strings of a JSON array; _NotJSONArray if it is not one, an error if it holds non-strings."""
    rest = trim_left_space(rest)
    if not rest.startswith("["):
        raise _NotJSONArray()
    try:
        values = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _NotJSONArray() from None
    if not isinstance(values, list):
        raise _NotJSONArray()
    if not all(isinstance(value, str) for value in values):
        raise DockerfileParseError(NOT_STRING_ARRAY)
    # Go's decoder turns invalid UTF-8 and lone surrogate escapes into U+FFFD.
    return [_SURROGATES.sub("\ufffd", value) for value in values]


def _parse_json(rest: str) -> tuple[Node | None, Attributes]:
    return _chain(parse_json_array(rest)), {"json": True}


def _parse_maybe_json(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    if rest == "":
        return None, None
    try:
        return _parse_json(rest)
    except _NotJSONArray:
        return Node(value=rest), None


def _parse_maybe_json_to_list(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    try:
        return _parse_json(rest)
    except _NotJSONArray:
        return _parse_whitespace_delimited(rest, escape_token)


def _parse_health_config(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    """HEALTHCHECK: the type word (CMD, NONE...) and then a RUN-like command."""
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    following = sep
    while following < len(rest) and is_space(rest[following]):
        following += 1
    if sep == 0:
        return None, None
    command, attrs = _parse_maybe_json(rest[following:], escape_token)
    return Node(value=rest[:sep], next=command), attrs


def _parse_sub_command(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    """ONBUILD: the rest is an instruction of its own, held as the only child of the argument."""
    if rest == "":
        return None, None
    return Node(children=[node_from_line(rest, escape_token, [])]), None


def _parse_ignore(rest: str, escape_token: str) -> tuple[Node | None, Attributes]:
    """Unknown instructions parse; the instructions layer reports them."""
    return Node(), None


DISPATCH: dict[str, LineParser] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


def node_from_line(line: str, escape_token: str, comments: list[str]) -> Node:
    """The instruction node of one logical line (keyword kept as written; dispatch is case-insensitive)."""
    cmd, flags, args = split_command(line)
    parser = DISPATCH.get(cmd.lower(), _parse_ignore)
    next_node, attrs = parser(args, escape_token)
    return Node(value=cmd, original=line, flags=flags, next=next_node, attributes=attrs or {},
                prev_comment=list(comments))
