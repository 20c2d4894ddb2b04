"""A FileOp's actions chained by index: op inputs, earlier results, scratch, outputs."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops import FileOpError, run_file_actions
from tests.unit.fileops.conftest import copy_action, listing, require_root, write_tree

NewDir = Callable[[Path | None], Path]


def _mkdir(path: str, input: int, output: int = -1) -> pb.FileAction:
    return pb.FileAction(input=input, secondaryInput=-1, output=output,
                         mkdir=pb.FileActionMkDir(path=path, mode=0o755, makeParents=True, timestamp=-1))


def _mkfile(path: str, input: int, output: int = -1, data: bytes = b"") -> pb.FileAction:
    return pb.FileAction(input=input, secondaryInput=-1, output=output,
                         mkfile=pb.FileActionMkFile(path=path, mode=0o644, data=data, timestamp=-1))


def _copy(src: str, dest: str, input: int, secondary: int, output: int = -1, **fields: object) -> pb.FileAction:
    return pb.FileAction(input=input, secondaryInput=secondary, output=output, copy=copy_action(src, dest, **fields))


def _rm(path: str, input: int, output: int = -1) -> pb.FileAction:
    return pb.FileAction(input=input, secondaryInput=-1, output=output, rm=pb.FileActionRm(path=path))


def test_actions_chain_on_earlier_results_and_leave_inputs_alone(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {"etc/os-release": "debian"})
    op = pb.FileOp(actions=[_mkdir("/app", 0), _mkfile("/app/f", 1, data=b"hi"), _rm("/etc", 2, output=0)])
    outputs = run_file_actions(op, [base], new_dir)
    assert listing(outputs[0]) == ["app/", "app/f"]
    assert listing(base) == ["etc/", "etc/os-release"]


def test_a_result_used_once_is_changed_in_place(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {})
    op = pb.FileOp(actions=[_mkdir("/a", 0), _mkdir("/b", 1), _mkdir("/c", 2, output=0)])
    outputs = run_file_actions(op, [base], new_dir)
    assert len(new_dir.made) == 1 and outputs[0] == new_dir.made[0]  # type: ignore[attr-defined]
    assert listing(outputs[0]) == ["a/", "b/", "c/"]


def test_a_result_read_twice_is_copied_for_each_change(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {})
    op = pb.FileOp(actions=[_mkdir("/shared", 0), _mkfile("/shared/one", 1, output=0),
                            _mkfile("/shared/two", 1, output=1)])
    outputs = run_file_actions(op, [base], new_dir)
    assert listing(outputs[0]) == ["shared/", "shared/one"]
    assert listing(outputs[1]) == ["shared/", "shared/two"]


def test_an_output_that_feeds_another_action_is_not_changed_by_it(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {})
    op = pb.FileOp(actions=[_mkdir("/a", 0, output=0), _mkdir("/b", 1, output=1)])
    outputs = run_file_actions(op, [base], new_dir)
    assert listing(outputs[0]) == ["a/"] and listing(outputs[1]) == ["a/", "b/"]


def test_copy_reads_its_source_from_another_input(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {"keep": ""})
    context = write_tree(tmp_path / "context", {"src/main.py": "print()"})
    op = pb.FileOp(actions=[_copy("/src", "/app/", 0, 1, output=0, dirCopyContents=True, createDestPath=True)])
    outputs = run_file_actions(op, [base, context], new_dir)
    assert listing(outputs[0]) == ["app/", "app/main.py", "keep"]


def test_copy_from_an_earlier_action(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {})
    op = pb.FileOp(actions=[_mkfile("/generated", -1, data=b"g"), _copy("/generated", "/copied", 0, 1, output=0)])
    outputs = run_file_actions(op, [base], new_dir)
    assert listing(outputs[0]) == ["copied"]


def test_scratch_input_starts_empty(tmp_path: Path, new_dir: NewDir) -> None:
    outputs = run_file_actions(pb.FileOp(actions=[_mkfile("/only", -1, output=0)]), [], new_dir)
    assert listing(outputs[0]) == ["only"]


def test_copy_from_scratch_finds_nothing(tmp_path: Path, new_dir: NewDir) -> None:
    op = pb.FileOp(actions=[_copy("/x", "/y", -1, -1, output=0)])
    with pytest.raises(FileOpError, match='"/x": not found'):
        run_file_actions(op, [], new_dir)


def test_actions_no_output_needs_are_not_run(tmp_path: Path, new_dir: NewDir) -> None:
    base = write_tree(tmp_path / "base", {})
    op = pb.FileOp(actions=[_rm("/does-not-exist", 0), _mkdir("/ok", 0, output=0)])
    assert listing(run_file_actions(op, [base], new_dir)[0]) == ["ok/"]


def test_outputs_are_keyed_by_output_index(tmp_path: Path, new_dir: NewDir) -> None:
    op = pb.FileOp(actions=[_mkdir("/second", -1, output=1), _mkdir("/first", -1, output=0)])
    outputs = run_file_actions(op, [], new_dir)
    assert listing(outputs[0]) == ["first/"] and listing(outputs[1]) == ["second/"]


@pytest.mark.parametrize(("actions", "message"), [
    ([_mkdir("/a", 0)], "no outputs specified"),
    ([_mkdir("/a", 0, output=0), _mkdir("/b", 0, output=0)], "duplicate output 0"),
    ([_mkdir("/a", 0, output=1)], "missing output index 0"),
    ([_mkdir("/a", 5, output=0)], "invalid input index 5, 2 provided"),
    ([_mkdir("/a", 2, output=0), _mkdir("/b", 1)], "loop from index 1"),
])
def test_malformed_chains_are_refused(tmp_path: Path, new_dir: NewDir, actions: list, message: str) -> None:
    with pytest.raises(FileOpError, match=message):
        run_file_actions(pb.FileOp(actions=actions), [tmp_path], new_dir)


def _named_chown(name: str, input_index: int) -> pb.ChownOpt:
    opt = pb.ChownOpt()
    opt.user.byName.name = name
    opt.user.byName.input = input_index
    return opt


def test_chown_by_name_reads_the_passwd_of_the_named_input(tmp_path: Path, new_dir: NewDir) -> None:
    require_root()
    rootfs = write_tree(tmp_path / "rootfs", {"etc/passwd": "app:x:1000:1001::/:/bin/sh\n"})
    other = write_tree(tmp_path / "other", {"etc/passwd": "app:x:2000:2001::/:/bin/sh\n"})
    context = write_tree(tmp_path / "context", {"f": ""})
    own = _copy("/f", "/own", 0, 2, output=0)
    own.copy.owner.CopyFrom(_named_chown("app", -1))
    named = _copy("/f", "/named", 0, 2, output=1)
    named.copy.owner.CopyFrom(_named_chown("app", 1))
    outputs = run_file_actions(pb.FileOp(actions=[own, named]), [rootfs, other, context], new_dir)
    assert os.stat(outputs[0] / "own").st_uid == 1000 and os.stat(outputs[1] / "named").st_gid == 2001
