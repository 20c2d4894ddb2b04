"""Go's notions of space, letters, digits and quoting, so our output matches upstream's byte for byte.

Python's own predicates differ at the edges (`str.isspace` accepts the ASCII separators
0x1c-0x1f, `str.isdigit` accepts superscripts), and the parser's dump format and the lexer's
word splitting are specified in terms of Go's `unicode` and `strconv` packages.
"""
from __future__ import annotations

# unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property.
_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                    "\u200a\u2028\u2029\u202f\u205f\u3000")
SPACES = "".join(sorted(_SPACES))

_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
                   "\\": "\\\\", '"': '\\"'}


def is_space(ch: str) -> bool:
    return ch in _SPACES


def is_letter(ch: str) -> bool:
    return ch.isalpha()


def is_digit(ch: str) -> bool:
    """unicode.IsDigit: decimal digits (category Nd) only."""
    return ch.isdecimal()


def trim_space(text: str) -> str:
    return text.strip(SPACES)


def trim_left_space(text: str) -> str:
    return text.lstrip(SPACES)


def go_quote(text: str) -> str:
    """strconv.Quote. Surrogate-escaped bytes (invalid UTF-8 read from a file) print as \\xNN, as in Go."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        escaped = _SIMPLE_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x7F or ch.isprintable():  # isprintable == Go's unicode.IsPrint (L, M, N, P, S and ' ')
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
