"""Shell-word expansion as BuildKit's Dockerfile lexer does it (not a full shell).

`$VAR`, `${VAR}` and the `${VAR:-x}` / `+` / `?` / `#` / `%` / `/` families, single and double
quotes, and the escape token (`\\` or the `# escape=` one). Positional and special parameters
are always empty. Names looked up are recorded as matched or unmatched, which drives the
unused-build-arg and undefined-variable checks.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pybuildkit.solver.errors import BuildError

_EOF = ""
_SPECIAL = set("@*#?-$!0")


class ShellError(BuildError):
    pass


@dataclass
class ProcessWordResult:
    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class _Words:
    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace() and self.in_word:
            if self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        elif not ch.isspace():
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch


class _ShellWord:
    def __init__(self, lex: "Lex", text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.escape = lex.escape_token
        self.scanner = _Scanner(text)
        self.env = env
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matches.add(name)
            return self.env[name], True
        self.nonmatches.add(name)
        return "", False

    def process(self, source: str) -> tuple[str, list[str]]:
        try:
            return self.process_stop_on(_EOF, self.lex.raw_escapes)
        except ShellError as exc:
            raise ShellError(f"failed to process {_go_quote(source)}: {exc.message}") from None

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        special = {"$": self.process_dollar}
        if not self.lex.skip_process_quotes:
            special["'"] = self.process_single_quote
            special['"'] = self.process_double_quote
        scanner = self.scanner
        while scanner.peek() != _EOF:
            ch = scanner.peek()
            if stop != _EOF and ch == stop:
                scanner.next()
                return "".join(result), words.get()
            fn = special.get(ch)
            if fn is not None:
                tmp = fn()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw_string(tmp)
                continue
            ch = scanner.next()
            if ch == self.escape:
                if raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = scanner.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop != _EOF:
            raise ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def process_single_quote(self) -> str:
        out: list[str] = []
        ch = self.scanner.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.scanner.next()
            if ch == _EOF:
                raise ShellError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        out: list[str] = []
        ch = self.scanner.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            peek = self.scanner.peek()
            if peek == _EOF:
                raise ShellError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = self.scanner.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self.process_dollar())
                continue
            ch = self.scanner.next()
            if ch == self.escape:
                if self.lex.raw_escapes:
                    out.append(ch)
                following = self.scanner.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.scanner.next()
            out.append(ch)

    def process_dollar(self) -> str:
        scanner = self.scanner
        scanner.next()
        if scanner.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        scanner.next()
        peek = scanner.peek()
        if peek == _EOF:
            raise ShellError("syntax error: missing '}'")
        if peek in ("{", "}", ":"):
            raise ShellError("syntax error: bad substitution")
        name = self.process_name()
        ch = scanner.next()
        chs = ch
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = scanner.next()
            chs += ch
            if ch not in ("+", "-", "?", "#", "%"):
                raise ShellError(f"unsupported modifier ({chs}) in substitution")
        if ch in ("+", "-", "?", "#", "%"):
            raw = ch in ("#", "%")
            if null_is_unset and raw:
                raise ShellError(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw)
            except ShellError:
                if scanner.peek() == _EOF:
                    raise ShellError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + chs + word + "}"
            if ch == "-":
                return word if (not found or (null_is_unset and value == "")) else value
            if ch == "+":
                return "" if (not found or (null_is_unset and value == "")) else word
            if ch == "?":
                if not found:
                    raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = scanner.peek() == "/"
            if replace_all:
                scanner.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
                replacement, _ = self.process_stop_on("}", True)
            except ShellError:
                if scanner.peek() == _EOF:
                    raise ShellError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            regex = _pattern_regex(pattern, True, False)
            if replace_all:
                return regex.sub(lambda _m: replacement, value)
            match = regex.search(value)
            if match:
                return value[:match.start()] + replacement + value[match.end():]
            return value
        raise ShellError(f"unsupported modifier ({chs}) in substitution")

    def process_name(self) -> str:
        scanner = self.scanner
        name: list[str] = []
        while scanner.peek() != _EOF:
            ch = scanner.peek()
            if not name and ch.isdigit():
                while scanner.peek() != _EOF and scanner.peek().isdigit():
                    name.append(scanner.next())
                return "".join(name)
            if not name and ch in _SPECIAL:
                return scanner.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(scanner.next())
        return "".join(name)


def _go_quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def convert_shell_pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> str:
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            if i < len(pattern) and pattern[i] == "}":
                continue
            tok = pattern[i] if i < len(pattern) else ""
            i += 1
            if tok == "/":  # an escaped separator of ${VAR/pattern/replacement}
                out.append("/")
                continue
            out.append("\\")
            if tok not in ("*", "?", "\\"):
                raise ShellError(f"invalid escape '\\{tok}'")
        elif tok in "[]{}.+()|^$":
            out.append("\\")
        out.append(tok)
    return "".join(out)


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    try:
        return re.compile(convert_shell_pattern_to_regex(pattern, greedy, anchored), re.DOTALL)
    except ShellError as exc:
        raise ShellError(f"invalid pattern ({pattern}) in substitution: {exc.message}") from None


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy, True).search(value)
    return value[match.end():] if match else value


def reverse_pattern(pattern: str) -> str:
    chars = list(pattern)
    out = [""] * len(chars)
    last = len(chars) - 1
    i = 0
    while i <= last:
        tok = chars[i]
        out_idx = last - i
        if tok == "\\" and i != last:
            out[out_idx - 1] = tok
            out[out_idx] = chars[i + 1]
            i += 2
        else:
            out[out_idx] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(reverse_pattern(pattern), value[::-1], greedy)[::-1]


class Lex:
    def __init__(self, escape_token: str = "\\") -> None:
        self.escape_token = escape_token
        self.raw_quotes = False
        self.raw_escapes = False
        self.skip_unset_env = False
        self.skip_process_quotes = False

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return _ShellWord(self, word, env).process(word)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return _ShellWord(self, word, env).process(word)[1]

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> ProcessWordResult:
        sw = _ShellWord(self, word, env)
        result, words = sw.process(word)
        return ProcessWordResult(result, words, sw.matches, sw.nonmatches)


def env_from_list(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out
