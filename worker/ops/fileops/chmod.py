"""Symbolic modes for `COPY --chmod` (`u+x`, `go=rx`, `a-w,u+s`, `u=g`), applied like chmod(1).

A missing `who` means `a` with no umask (BuildKit parses with umask 0). `X` adds execute only to
directories and to files that already have an execute bit, evaluated as each clause is applied,
as BSD's setmode (which BuildKit's parser follows) does. An octal string is accepted as well.
"""
from __future__ import annotations

import re
import stat
from dataclasses import dataclass

from pybuildkit.solver.errors import BuildError

_WHO_BITS = {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}
_PERM_BITS = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}
_SHIFT = {"u": 6, "g": 3, "o": 0}
_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)")
_ACTION = re.compile(r"([-+=])([ugo]|[rwxXst]*)")


class InvalidModeError(BuildError):
    pass


@dataclass(frozen=True)
class _Action:
    who_mask: int
    op: str
    perms: str


@dataclass(frozen=True)
class ModeSpec:
    """A parsed chmod mode, applied to each copied entry's own mode."""

    text: str
    octal: int | None
    actions: tuple[_Action, ...]

    def apply(self, mode: int) -> int:
        """The permission bits (with setuid/setgid/sticky) for an entry of full st_mode `mode`."""
        if self.octal is not None:
            return self.octal
        is_dir = stat.S_ISDIR(mode)
        current = stat.S_IMODE(mode)
        for action in self.actions:
            bits = self._bits(action, current, is_dir)
            if action.op == "+":
                current |= bits
            elif action.op == "-":
                current &= ~bits
            else:
                current = (current & ~action.who_mask) | bits
        return current & 0o7777

    @staticmethod
    def _bits(action: _Action, current: int, is_dir: bool) -> int:
        if action.perms in _SHIFT:
            rwx = (current >> _SHIFT[action.perms]) & 0o7
            return (rwx << 6 | rwx << 3 | rwx) & action.who_mask & 0o777
        bits = 0
        for perm in action.perms:
            if perm == "X":
                if is_dir or current & 0o111:
                    bits |= 0o111
            else:
                bits |= _PERM_BITS[perm]
        return bits & action.who_mask


def parse_mode(text: str) -> ModeSpec:
    """Parse `--chmod`'s value; raises InvalidModeError naming the value when it is neither."""
    if re.fullmatch(r"[0-7]{1,4}", text):
        return ModeSpec(text, int(text, 8), ())
    actions: list[_Action] = []
    for clause in text.split(","):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise InvalidModeError(f"invalid chmod parameter: {text!r}: not an octal or symbolic mode")
        who_mask = 0
        for who in match.group(1) or "a":
            who_mask |= _WHO_BITS[who]
        for op, perms in _ACTION.findall(match.group(2)):
            actions.append(_Action(who_mask, op, perms))
    return ModeSpec(text, None, tuple(actions))
