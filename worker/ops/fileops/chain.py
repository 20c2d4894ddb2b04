"""Running a FileOp: its actions form a small graph (BUILDKIT-FACTS §2).

An action's `input` (the tree it changes), `secondaryInput` (a copy's source) and a chown's
`NamedUserOpt.input` (whose /etc/passwd names mean something) are indexes: below the op's input
count they are op inputs, above it the result of action `index - len(inputs)`, -1 is scratch
(for a NamedUserOpt, -1 means the action's own input tree). As in BuildKit, only actions that an
output needs run, each once.

Every action works on `new_dir(base)`, a fresh writable copy, never on an op input. One shortcut:
an action's result that only one later action uses as its tree, and that is not an output
itself, is changed in place by that action rather than copied (BuildKit does the same with its
uncommitted mounts). Results read by several actions are never changed in place.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from pybuildkit.worker.contenthash.checksum import FileKey
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops.actions import mkdir, mkfile, rm, symlink
from pybuildkit.worker.ops.fileops.copy import copy
from pybuildkit.worker.ops.fileops.errors import FileOpError
from pybuildkit.worker.ops.fileops.owner import named_input, resolve_owner

SCRATCH = -1


def _owner_of(action: pb.FileAction) -> pb.ChownOpt | None:
    detail = getattr(action, action.WhichOneof("action") or "rm")
    if isinstance(detail, pb.FileActionRm) or not detail.HasField("owner"):
        return None
    return detail.owner


def _validate(fileop: pb.FileOp, count: int) -> dict[int, int]:
    """{output index: action position}, with BuildKit's checks of the indexes."""
    total = count + len(fileop.actions)
    outputs: dict[int, int] = {}
    for position, action in enumerate(fileop.actions):
        for idx in (action.input, action.secondaryInput):
            if idx < SCRATCH or idx >= total:
                raise FileOpError(f"invalid input index {idx}, {total} provided")
        if action.WhichOneof("action") is None:
            raise FileOpError(f"invalid file action {position}: no action set")
        if action.output != SCRATCH:
            if action.output in outputs:
                raise FileOpError(f"duplicate output {action.output}")
            outputs[action.output] = position
    if not outputs:
        raise FileOpError("no outputs specified")
    for index in range(len(outputs)):
        if index not in outputs:
            raise FileOpError(f"missing output index {index}")
    return outputs


class _Chain:
    def __init__(self, fileop: pb.FileOp, inputs: Sequence[Path | None],
                 new_dir: Callable[[Path | None], Path], scratch: Path,
                 linkable: frozenset[Path] = frozenset(),
                 linked: Callable[[list[FileKey]], None] | None = None) -> None:
        self.actions = list(fileop.actions)
        self.linkable = linkable
        self.linked = linked
        self.inputs = inputs
        self.new_dir = new_dir
        self.scratch = scratch
        self.results: dict[int, Path] = {}
        self.running: set[int] = set()
        self.readers: Counter[int] = Counter()
        for action in self.actions:
            self.readers[action.input] += 1
            self.readers[action.secondaryInput] += 1
            chown = _owner_of(action)
            if chown is not None:
                self.readers.update(named_input(chown))
        self.outputs = {position for position, action in enumerate(self.actions) if action.output != SCRATCH}

    def tree(self, idx: int) -> Path | None:
        """The directory at index `idx`, running the action behind it first when needed."""
        if idx == SCRATCH:
            return None
        if idx < len(self.inputs):
            return self.inputs[idx]
        return self.run(idx - len(self.inputs))

    def _lookup_root(self, part: pb.UserOpt, own: Path) -> Path | None:
        if part.WhichOneof("user") != "byName":
            return None
        return own if part.byName.input == SCRATCH else self.tree(part.byName.input)

    def run(self, position: int) -> Path:
        if position in self.results:
            return self.results[position]
        if position in self.running:
            raise FileOpError(f"loop from index {position + len(self.inputs)}")
        self.running.add(position)
        action = self.actions[position]
        base = self.tree(action.input)
        in_place = (action.input >= len(self.inputs) and self.readers[action.input] == 1
                    and action.input - len(self.inputs) not in self.outputs)
        work = base if in_place and base is not None else self.new_dir(base)
        kind = action.WhichOneof("action")
        owner = None
        chown = _owner_of(action)
        if chown is not None:
            user_root = self._lookup_root(chown.user, work)
            owner = resolve_owner(chown, user_root, group_root=self._lookup_root(chown.group, work))
        if kind == "mkdir":
            mkdir(work, action.mkdir, owner)
        elif kind == "mkfile":
            mkfile(work, action.mkfile, owner)
        elif kind == "rm":
            rm(work, action.rm)
        elif kind == "symlink":
            symlink(work, action.symlink, owner)
        else:
            source = self.tree(action.secondaryInput)
            copy(source if source is not None else self.scratch, work, action.copy, owner,
                 link=source is not None and source in self.linkable, linked=self.linked)
        self.running.discard(position)
        self.results[position] = work
        return work


def run_file_actions(fileop: pb.FileOp, inputs: Sequence[Path | None],
                     new_dir: Callable[[Path | None], Path], *,
                     linkable: frozenset[Path] = frozenset(),
                     linked: Callable[[list[FileKey]], None] | None = None) -> dict[int, Path]:
    """Run the actions the outputs need; {output index: its directory}. Copies from the
    `linkable` inputs (immutable trees) may hardlink files whose metadata the copy keeps;
    `linked` then hears which source files got a link."""
    outputs = _validate(fileop, len(inputs))
    with tempfile.TemporaryDirectory(prefix="pbk-scratch-") as scratch:
        chain = _Chain(fileop, inputs, new_dir, Path(scratch), linkable, linked)
        return {index: chain.run(position) for index, position in sorted(outputs.items())}
