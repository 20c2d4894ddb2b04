"""COPY and ADD: sources from the context, a stage, an image, a URL, a git repository or a
heredoc; --chown, --chmod, --link, --parents, --exclude, --checksum."""
from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from pybuildkit.frontend.dockerfile.dockerfile2llb.dispatch import history
from pybuildkit.frontend.dockerfile.dockerfile2llb.run import context_state, source_state
from pybuildkit.frontend.dockerfile.instructions import DockerfileError, Instruction
from pybuildkit.frontend.dockerfile.instructions.values import is_number
from pybuildkit.frontend.dockerfile.parser import chomp_heredoc_content, must_parse_heredoc
from pybuildkit.solver.llb import builder as llb

if TYPE_CHECKING:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.convert import Converter, StageState

_SYMBOLIC = re.compile(r"^([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*$")
_GIT = re.compile(r"^(git@|git://|https?://[^ ]+\.git(#.*)?$|github\.com/)")


def parse_chmod(value: str) -> tuple[int | None, str]:
    if re.fullmatch(r"[0-7]+", value):
        mode = int(value, 8)
        if mode > 0o7777:
            raise DockerfileError(f"invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")
        return mode, ""
    if _SYMBOLIC.match(value):
        return None, value
    raise DockerfileError(f"invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")


def parse_chown(value: str) -> llb.ChownOpt | None:
    if not value:
        return None
    user, _, group = value.partition(":")

    def one(text: str) -> int | str | None:
        if text == "":
            return None
        return int(text) if is_number(text) else text

    return llb.ChownOpt(one(user), one(group))


async def dispatch_copy(conv: "Converter", st: "StageState", ins: Instruction, build) -> None:
    env = st.expansion_env()
    is_add = ins.name == "ADD"
    from_ref = str(ins.flags.get("from") or "")
    if from_ref and "$" in from_ref:
        from_ref = conv.expand(from_ref, env, ins)
    if from_ref and is_add:
        raise DockerfileError("ADD does not support --from")
    words = [w if must_parse_heredoc(w) is not None and ins.heredocs else conv.expand(w, env, ins) for w in ins.args]
    dest = words[-1]
    sources = words[:-1]
    chown = parse_chown(conv.expand(str(ins.flags.get("chown") or ""), env, ins))
    mode, mode_str = (None, "")
    if ins.flags.get("chmod"):
        mode, mode_str = parse_chmod(conv.expand(str(ins.flags["chmod"]), env, ins))
    excludes = [conv.expand(str(e), env, ins) for e in ins.flags.get("exclude", [])]  # type: ignore[union-attr]
    dest_path = posixpath.join(st.workdir or "/", dest) if not dest.startswith("/") else dest
    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    if dest_is_dir or len(sources) > 1:
        dest_path = posixpath.normpath(dest_path) + "/"
        if dest_path == "//":
            dest_path = "/"
    else:
        dest_path = posixpath.normpath(dest_path)
    if from_ref:
        src_state = await source_state(conv, st, from_ref, ins, build)
    else:
        src_state = None
    link = bool(ins.flags.get("link"))
    action: llb.FileAction | None = None
    heredocs = {doc.name: doc for doc in ins.heredocs}
    for src in sources:
        heredoc = must_parse_heredoc(src) if heredocs else None
        if heredoc is not None and heredoc.name in heredocs:
            doc = heredocs[heredoc.name]
            content = chomp_heredoc_content(doc.content) if doc.chomp else doc.content
            if doc.expand:
                content = conv.expand_heredoc(content, env, ins)
            target = dest_path + doc.name if dest_path.endswith("/") else dest_path
            step = dict(owner=chown, timestamp=None)
            parent = posixpath.dirname(target.rstrip("/")) or "/"
            action = (llb.mkdir if action is None else action.mkdir)(parent, 0o755, make_parents=True, owner=chown)
            action = action.mkfile(target, mode if mode is not None else 0o644, content.encode(), **step)
            continue
        if is_add and re.match(r"^https?://", src) and not _GIT.match(src):
            checksum = str(ins.flags.get("checksum") or "")
            name = posixpath.basename(src.split("?", 1)[0]) or "index.html"
            source = llb.http(src, checksum=checksum, filename=name, constraints=llb.Constraints(custom_name=src))
            target = dest_path if not dest_path.endswith("/") else dest_path
            action = _copy(action, source, f"/{name}", target, chown, mode, mode_str, excludes, ins)
            continue
        if is_add and _GIT.match(src):
            remote, _, ref = src.partition("#")
            ref, _, subdir = ref.partition(":")
            source = llb.git(remote, ref, keep_git_dir=bool(ins.flags.get("keep-git-dir")), subdir=subdir)
            action = _copy(action, source, "/", dest_path, chown, mode, mode_str, excludes, ins, contents=True)
            continue
        if re.match(r"^[a-z]+://", src) and not is_add:
            raise DockerfileError("source can't be a URL for COPY")
        state = src_state if src_state is not None else context_state(conv)
        if ins.flags.get("parents"):
            action = _copy_with_parents(action, state, src, dest_path, chown, mode, mode_str, excludes, ins)
            continue
        src_path = posixpath.normpath("/" + src) if src not in ("", ".") else "/"
        action = _copy(action, state, src_path, dest_path, chown, mode, mode_str, excludes, ins,
                       contents=True, unpack=is_add and src_state is None and ins.flags.get("unpack") is not False)
    if action is None:
        return
    constraints = conv.constraints(conv.step_name(st, ins), ins, st.stage)
    if link:
        layer = llb.scratch().file(action, constraints)
        st.state = llb.merge([st.state, layer]).platform(st.platform)
    else:
        st.state = st.state.file(action, constraints)
    history(st, f"{ins.name} {' '.join(words)} # buildkit", empty=False)


def _copy_with_parents(action, state, src: str, dest: str, chown, mode, mode_str, excludes, ins):
    """COPY --parents: keep the source's path (after a `/./` pivot, if any) under the destination,
    expressed as a copy of the pivot directory restricted by an include pattern, as upstream does."""
    raw = src if src.startswith("/") else "/" + src
    if "/./" in raw:  # the first pivot counts; a trailing "/." is not one
        pivot, rest = raw.split("/./", 1)
    else:
        pivot, rest = "/", raw
    pivot = posixpath.normpath(pivot or "/")
    rest = posixpath.normpath(rest).lstrip("/") if rest else ""
    dest_dir = dest if dest.endswith("/") else dest + "/"
    if rest in ("", "."):
        return _copy(action, state, pivot, dest_dir, chown, mode, mode_str, excludes, ins)
    wildcard = any(c in rest for c in "*?[")
    return _copy(action, state, pivot, dest_dir, chown, mode, mode_str, excludes, ins,
                 include=[rest], required=[] if wildcard else [rest])


def _copy(action: llb.FileAction | None, source: llb.State, src: str, dest: str, chown, mode, mode_str, excludes,
          ins: Instruction, *, contents: bool = True, unpack: bool = False, include: list[str] | None = None,
          required: list[str] | None = None) -> llb.FileAction:
    options = dict(owner=chown, mode=mode, mode_str=mode_str, follow_symlink=True, dir_copy_contents=contents,
                   attempt_unpack=unpack, create_dest_path=True, allow_wildcard=True, allow_empty_wildcard=True,
                   exclude_patterns=excludes, always_replace_existing_dest_paths=bool(ins.flags.get("link")),
                   include_patterns=include or (), required_paths=required or ())
    if action is None:
        return llb.copy(source, src, dest, **options)
    return action.copy(source, src, dest, **options)
