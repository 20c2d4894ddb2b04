"""Shell glob patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`, as BuildKit evaluates them.

Only `*`, `?` and backslash escapes are understood (no bracket expressions). A pattern becomes a
regular expression; `%` forms reverse both value and pattern so that "shortest suffix" becomes a
leftmost search, which is how upstream does it.
"""
from __future__ import annotations

import re
from functools import lru_cache

_REGEX_SPECIAL = frozenset("[]{}.+()|^$")


class PatternError(ValueError):
    """The pattern has an escape a shell glob does not allow (only \\*, \\? and \\\\ are valid)."""


def convert_shell_pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> str:
    """The regular expression (Go/Python common syntax) equivalent to a shell glob."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    index, size = 0, len(pattern)
    while index < size:
        tok = pattern[index]
        index += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[index] if index < size else ""
            if following in ("}", "/"):
                continue  # escaped only to get past the ${...} syntax; not part of the pattern
            out.append("\\")
            index += 1
            tok = following
            if tok not in ("*", "?", "\\"):
                raise PatternError(f"invalid escape '\\{tok or chr(0xFFFD)}'")
        elif tok in _REGEX_SPECIAL:
            out.append("\\")
        out.append(tok)
    return "".join(out)


@lru_cache(maxsize=256)
def _compile(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    # No DOTALL: Go's "." does not match a newline either.
    return re.compile(convert_shell_pattern_to_regex(pattern, greedy, anchored))


def compile_pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    return _compile(pattern, greedy, anchored)


def reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each escape before the character it escapes (a\\*c -> c\\*a)."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    index = 0
    while index <= last:
        tok = pattern[index]
        target = last - index
        if tok == "\\" and index != last:
            out[target - 1] = tok
            out[target] = pattern[index + 1]
            index += 2
        else:
            out[target] = tok
            index += 1
    return "".join(out)


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = compile_pattern(pattern, greedy, True).match(value)
    return value[match.end():] if match else value


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return trim_prefix(reverse_pattern(pattern), value[::-1], greedy)[::-1]


def replace(pattern: str, value: str, replacement: str, replace_all: bool) -> str:
    regex = compile_pattern(pattern, True, False)
    if replace_all:
        # Go's ReplaceAllString expands $0 / ${0} / $$ in the replacement; a plain first replace does not.
        return regex.sub(lambda match: go_expand(replacement, match.group(0)), value)
    match = regex.search(value)
    if match is None:
        return value
    return value[:match.start()] + replacement + value[match.end():]


def _extract_name(template: str) -> tuple[str, str] | None:
    """Go's regexp `extract`: the name after a `$` ($name or ${name}) and what follows it."""
    brace = template.startswith("{")
    index = 1 if brace else 0
    start = index
    while index < len(template) and (template[index].isalpha() or template[index].isdecimal()
                                     or template[index] == "_"):
        index += 1
    if index == start:
        return None
    name = template[start:index]
    if brace:
        if index >= len(template) or template[index] != "}":
            return None
        index += 1
    return name, template[index:]


def go_expand(template: str, whole_match: str) -> str:
    """Regexp.Expand for a pattern without groups: $0 is the match, other names are empty."""
    out: list[str] = []
    while True:
        before, dollar, after = template.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        if after.startswith("$"):
            out.append("$")
            template = after[1:]
            continue
        extracted = _extract_name(after)
        if extracted is None:
            out.append("$")
            template = after
            continue
        name, template = extracted
        if name.isascii() and name.isdigit() and int(name) == 0:
            out.append(whole_match)
