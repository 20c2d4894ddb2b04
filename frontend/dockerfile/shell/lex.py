"""Shell-word expansion as BuildKit's Dockerfile lexer does it (not a full shell).

`$VAR`, `${VAR}` and the `${VAR:-x}` / `+` / `?` / `#` / `%` / `/` families, single and double
quotes, and the escape token (`\\` or the one set by `# escape=`). Positional and special
parameters are always empty. Every name looked up is recorded as matched or unmatched: that
drives the unused-build-arg and undefined-variable checks and ARG cache dependencies.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.shell import pattern as patterns
from pybuildkit.frontend.dockerfile.shell.gostrings import SPACES, go_quote, is_digit, is_letter, is_space
from pybuildkit.solver.budget import checkpoint
from pybuildkit.solver.errors import BuildError

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_MODIFIERS = frozenset("+-?#%")
_HEREDOC_SPACE = frozenset("\t\r ")
_SPACE_RUN = re.compile("[" + re.escape(SPACES) + "]+")
_SURROGATE_BYTES = re.compile("[\udc80-\udcff]")

# Hostile-input bounds. Upstream has none (Go stacks grow, its strings are cheap); we bound both so
# a crafted Dockerfile costs milliseconds and ends in an error naming the variable.
DEFAULT_MAX_EXPANSION = 1 << 20  # characters one word may gain from expansion (1 MiB of ASCII)
MAX_NESTING = 64  # `${A:-${B:-...}}` levels; each level is a few Python frames

__all__ = ["DEFAULT_MAX_EXPANSION", "MAX_NESTING", "ExpansionLimitError", "Lex", "ProcessWordResult", "ShellError",
           "convert_shell_pattern_to_regex", "env_from_list", "reverse_pattern"]


class ShellError(BuildError):
    """A word could not be expanded (unterminated quote, bad substitution, `${VAR?msg}` unset...)."""


class ExpansionLimitError(ShellError):
    """A word grew past the expansion bound, or nested past MAX_NESTING: an expansion bomb."""

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message, hint="Dockerfile variables are bounded in size; build large values in a RUN step")
        self.variable = variable


@dataclass
class ProcessWordResult:
    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


def convert_shell_pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> str:
    try:
        return patterns.convert_shell_pattern_to_regex(pattern, greedy, anchored)
    except patterns.PatternError as exc:
        raise ShellError(str(exc)) from None


reverse_pattern = patterns.reverse_pattern


class _Words:
    """Field splitting: unquoted (and unquoted-expansion) whitespace separates words.

    The current word is a list of pieces, joined once: appending to a str attribute copies it
    each time, which made a long word quadratic."""

    __slots__ = ("pieces", "words", "in_word")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def _end_word(self) -> None:
        word = "".join(self.pieces)
        if self.in_word and word:
            self.words.append(word)
        self.pieces = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            self._end_word()
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.pieces.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        if not text:
            return
        if _SPACE_RUN.search(text) is None:
            self.add_raw_string(text)
            return
        for index, part in enumerate(_SPACE_RUN.split(text)):
            if index:
                self._end_word()
            if part:
                self.add_raw_string(part)

    def add_raw_string(self, text: str) -> None:
        self.pieces.append(text)
        self.in_word = True

    def get(self) -> list[str]:
        word = "".join(self.pieces)
        if word:
            self.words.append(word)
            self.pieces = []
            self.in_word = False
        return self.words


class _ShellWord:
    """One expansion run over one word; holds the cursor and the names looked up."""

    def __init__(self, lex: Lex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.escape = lex.escape_token
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()
        self.expanded = 0  # characters gained from variables and replacements so far
        self.depth = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def grow(self, name: str, size: int) -> None:
        """Count what an expansion adds; checked as it happens, so a bomb stops at the bound."""
        self.expanded += size
        checkpoint(size)
        if self.expanded > self.lex.max_expansion:
            raise ExpansionLimitError(f"expanding ${{{name}}} makes the word longer than the limit of "
                                      f"{self.lex.max_expansion} characters", variable=name)

    def get_env(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is not None:
            self.matches.add(name)
            self.grow(name, len(value))
            return value, True
        self.nonmatches.add(name)
        return "", False

    def process(self, source: str) -> tuple[str, list[str]]:
        try:
            return self.process_stop_on(_EOF, self.raw_escapes)
        except ExpansionLimitError as exc:
            shown = source if len(source) <= 200 else source[:200] + "..."
            raise ExpansionLimitError(f"failed to process {go_quote(shown)}: {exc.message}",
                                      variable=exc.variable) from None
        except ShellError as exc:
            raise ShellError(f"failed to process {go_quote(source)}: {exc.message}") from None

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._process_stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _handler(self, ch: str) -> Callable[[], str] | None:
        if ch == "$":
            return self.process_dollar
        if ch == "<":
            return self.process_possible_heredoc
        if not self.lex.skip_process_quotes:
            if ch == "'":
                return self.process_single_quote
            if ch == '"':
                return self.process_double_quote
        return None

    def _process_stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while (ch := self.peek()) != _EOF:
            if stop != _EOF and ch == stop:
                self.next()
                return "".join(result), words.get()
            handler = self._handler(ch)
            if handler is not None:
                expanded = handler()
                result.append(expanded)
                if ch == "$":
                    words.add_string(expanded)
                else:
                    words.add_raw_string(expanded)
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = self.next()
                if ch == _EOF:
                    break  # a lone escape at the end of the word is dropped
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop != _EOF:
            raise ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def process_single_quote(self) -> str:
        out: list[str] = []
        opening = self.next()
        if self.lex.raw_quotes:
            out.append(opening)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ShellError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        out: list[str] = []
        opening = self.next()
        if self.lex.raw_quotes:
            out.append(opening)
        while True:
            peek = self.peek()
            if peek == _EOF:
                raise ShellError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                closing = self.next()
                if self.lex.raw_quotes:
                    out.append(closing)
                return "".join(out)
            if peek == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue  # the missing closing quote is reported on the next turn
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def process_possible_heredoc(self) -> str:
        """`<<` (or `<<-`) keeps the blanks after it in its word: `<< EOF` is one heredoc word."""
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        while self.peek() in _HEREDOC_SPACE and self.peek() != _EOF:
            self.pos += 1
        return "<<" + self.text[start:self.pos]

    def process_name(self) -> str:
        start = self.pos
        while (ch := self.peek()) != _EOF:
            if self.pos == start and is_digit(ch):
                while self.peek() != _EOF and is_digit(self.peek()):
                    self.pos += 1
                return self.text[start:self.pos]
            if self.pos == start and ch in _SPECIAL_PARAMS:
                self.pos += 1
                return ch
            if not (is_letter(ch) or is_digit(ch) or ch == "_"):
                break
            self.pos += 1
        return self.text[start:self.pos]

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()
        self.depth += 1
        try:
            return self._braced()
        finally:
            self.depth -= 1

    def _braced(self) -> str:
        peek = self.peek()
        if peek == _EOF:
            raise ShellError("syntax error: missing '}'")
        if self.depth > MAX_NESTING:
            name = self.process_name()
            raise ExpansionLimitError(f"${{{name}...}} is nested more than {MAX_NESTING} levels deep", variable=name)
        if peek in ("{", "}", ":"):
            raise ShellError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch or "\ufffd"
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == ":":
            ch = self.next()
            chs += ch or "\ufffd"
            return self._modifier(name, ch, chs, null_is_unset=True)
        if ch in _MODIFIERS:
            return self._modifier(name, ch, chs, null_is_unset=False)
        if ch == "/":
            return self._replace(name)
        raise ShellError(f"unsupported modifier ({chs}) in substitution")

    def _word_until_brace(self, raw_escapes: bool) -> str:
        try:
            return self.process_stop_on("}", raw_escapes)[0]
        except ShellError:
            if self.peek() == _EOF:
                raise ShellError("syntax error: missing '}'") from None
            raise

    def _modifier(self, name: str, ch: str, chs: str, *, null_is_unset: bool) -> str:
        is_pattern = ch in ("#", "%")
        if null_is_unset and is_pattern:
            raise ShellError(f"unsupported modifier ({chs}) in substitution")
        word = self._word_until_brace(is_pattern)
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + chs + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if is_pattern:
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            try:
                if ch == "%":
                    return patterns.trim_suffix(word, value, greedy)
                return patterns.trim_prefix(word, value, greedy)
            except patterns.PatternError as exc:
                raise ShellError(f"invalid pattern ({word}) in substitution: {exc}") from None
        raise ShellError(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern = self.process_stop_on("/", True)[0]
        except ShellError:
            if self.peek() == _EOF:
                raise ShellError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._word_until_brace(True)
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        try:
            replaced = patterns.replace(pattern, value, replacement, replace_all)
        except patterns.PatternError as exc:
            raise ShellError(f"invalid pattern ({pattern}) in substitution: {exc}") from None
        self.grow(name, max(0, len(replaced) - len(value)))
        return replaced


class Lex:
    """Expands and splits words. Not safe to share between threads while its flags change."""

    def __init__(self, escape_token: str = "\\", *, max_expansion: int = DEFAULT_MAX_EXPANSION) -> None:
        self.escape_token = escape_token
        self.max_expansion = max_expansion
        self.raw_quotes = False
        self.raw_escapes = False
        self.skip_unset_env = False
        self.skip_process_quotes = False

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[_ShellWord, str, list[str]]:
        # Go's scanner reads each invalid UTF-8 byte as U+FFFD.
        text = _SURROGATE_BYTES.sub("\ufffd", word) if not word.isascii() else word
        shell_word = _ShellWord(self, text, env)
        checkpoint(len(text))
        result, words = shell_word.process(word)
        return shell_word, result, words

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self._run(word, env)[1]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self._run(word, env)[2]

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> ProcessWordResult:
        shell_word, result, words = self._run(word, env)
        return ProcessWordResult(result, words, shell_word.matches, shell_word.nonmatches)


def env_from_list(items: Iterable[str]) -> dict[str, str]:
    """"K=V" strings to a mapping; a bare "K" means K is set to ""; the last duplicate wins."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out
