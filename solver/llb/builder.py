"""A Python LLB builder in the spirit of BuildKit's Go `llb` package.

States are immutable values: every method returns a new State. A State points at one output of
one vertex plus the metadata (env, working dir, user, platform...) that later `run` calls use as
defaults, exactly as Go's `llb.State` carries them in its context. `State.marshal()` turns the
graph into a `pb.Definition` whose op bytes follow BuildKit's order, so digests match.
"""
from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pybuildkit.solver.budget import checkpoint
from pybuildkit.solver.llb.imageref import normalize_image_ref
from pybuildkit.solver.llb.marshal import op_digest
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform, host_platform

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class SourceMap:
    """A file (usually the Dockerfile) that ops can point back to for error locations."""

    filename: str
    data: bytes
    language: str = ""


@dataclass(frozen=True)
class Constraints:
    """Per-op metadata that does not change what the op computes, except the platform."""

    custom_name: str | None = None
    ignore_cache: bool = False
    description: tuple[tuple[str, str], ...] = ()
    progress_group: tuple[str, str, bool] | None = None
    locations: tuple[tuple[SourceMap, tuple[tuple[int, int], ...]], ...] = ()
    platform: Platform | None = None
    worker_filter: tuple[str, ...] = ()


class Vertex:
    """One op in the graph. Subclasses build their `pb.Op` given the marshal context."""

    def __init__(self, constraints: Constraints) -> None:
        self.constraints = constraints

    def input_outputs(self) -> list["Output"]:
        return []

    def build_op(self, ctx: "_MarshalContext") -> pb.Op:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Output:
    vertex: Vertex
    index: int = 0


@dataclass(frozen=True)
class StateMeta:
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = ""
    platform: Platform | None = None
    network: int = pb.UNSET
    security: int = pb.SANDBOX
    extra_hosts: tuple[tuple[str, str], ...] = ()
    ulimits: tuple[tuple[str, int, int], ...] = ()
    cgroup_parent: str = ""
    valid_exit_codes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class State:
    output: Output | None = None
    meta: StateMeta = field(default_factory=StateMeta)

    # -- metadata, mirroring Go's State.AddEnv / Dir / User ... --
    def add_env(self, key: str, value: str) -> "State":
        env = [(k, v) for k, v in self.meta.env if k != key] + [(key, value)]
        return replace(self, meta=replace(self.meta, env=tuple(env)))

    def get_env(self, key: str) -> str | None:
        for k, v in self.meta.env:
            if k == key:
                return v
        return None

    def env_list(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.meta.env]

    def dir(self, path: str) -> "State":
        return replace(self, meta=replace(self.meta, cwd=posixpath.join(self.meta.cwd, path)))

    def user(self, user: str) -> "State":
        return replace(self, meta=replace(self.meta, user=user))

    def hostname(self, name: str) -> "State":
        return replace(self, meta=replace(self.meta, hostname=name))

    def platform(self, platform: Platform) -> "State":
        return replace(self, meta=replace(self.meta, platform=platform))

    def network(self, mode: int) -> "State":
        return replace(self, meta=replace(self.meta, network=mode))

    def security(self, mode: int) -> "State":
        return replace(self, meta=replace(self.meta, security=mode))

    def add_extra_host(self, host: str, ip: str) -> "State":
        return replace(self, meta=replace(self.meta, extra_hosts=self.meta.extra_hosts + ((host, ip),)))

    def add_ulimit(self, name: str, soft: int, hard: int) -> "State":
        return replace(self, meta=replace(self.meta, ulimits=self.meta.ulimits + ((name, soft, hard),)))

    def with_output(self, output: Output | None) -> "State":
        return replace(self, output=output)

    # -- graph operations --
    def run(self, args: Sequence[str] | str, *, mounts: Sequence["Mount"] = (),
            secrets: Sequence["SecretMount"] = (), ssh: Sequence["SSHMount"] = (),
            proxy_env: pb.ProxyEnv | None = None, readonly_rootfs: bool = False,
            remove_mount_stubs_recursive: bool = False,
            constraints: Constraints = Constraints(), **meta_overrides: Any) -> "ExecState":
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        meta = replace(self.meta, **meta_overrides) if meta_overrides else self.meta
        root = Mount("/", self, readonly=readonly_rootfs)
        exec_vertex = ExecVertex(argv, meta, [root, *mounts], list(secrets), list(ssh), proxy_env,
                                 remove_mount_stubs_recursive, constraints)
        return ExecState(exec_vertex, replace(self, output=exec_vertex.output_for("/")))

    def file(self, action: "FileAction", constraints: Constraints = Constraints()) -> "State":
        vertex = FileVertex(action, self, constraints)
        return replace(self, output=Output(vertex, 0))

    def marshal(self, platform: Platform | None = None) -> pb.Definition:
        return marshal_definition(self.output, platform or self.meta.platform)


class ExecState:
    """What `State.run` returns: the root state plus access to other mounts' outputs."""

    def __init__(self, vertex: "ExecVertex", root: State) -> None:
        self.vertex = vertex
        self._root = root

    def root(self) -> State:
        return self._root

    def get_mount(self, dest: str) -> State:
        return self._root.with_output(self.vertex.output_for(dest))


@dataclass(frozen=True)
class Mount:
    dest: str
    source: State | None = None
    selector: str = ""
    readonly: bool = False
    cache_id: str = ""
    cache_sharing: int = pb.SHARED
    tmpfs: bool = False
    tmpfs_size: int = 0
    no_output: bool = False
    content_cache: int = pb.DEFAULT


@dataclass(frozen=True)
class SecretMount:
    id: str
    target: str | None = None
    env: str | None = None
    uid: int = 0
    gid: int = 0
    mode: int = 0o400
    optional: bool = False


@dataclass(frozen=True)
class SSHMount:
    id: str = ""
    target: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0o600
    optional: bool = False


class _MarshalContext:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.digests: dict[int, str] = {}

    def input_for(self, output: Output) -> pb.Input:
        return pb.Input(digest=self.digests[id(output.vertex)], index=output.index)


def _base_op(vertex: Vertex, ctx: _MarshalContext, state_platform: Platform | None = None) -> pb.Op:
    op = pb.Op()
    platform = vertex.constraints.platform or state_platform or ctx.platform
    op.platform.CopyFrom(platform.to_pb())
    if vertex.constraints.worker_filter:
        op.constraints.filter.extend(vertex.constraints.worker_filter)
    return op


class SourceVertex(Vertex):
    def __init__(self, identifier: str, attrs: dict[str, str], constraints: Constraints) -> None:
        super().__init__(constraints)
        self.identifier = identifier
        self.attrs = attrs

    def build_op(self, ctx: _MarshalContext) -> pb.Op:
        op = _base_op(self, ctx)
        op.source.identifier = self.identifier
        op.source.attrs.update(self.attrs)
        return op


class ExecVertex(Vertex):
    def __init__(self, args: list[str], meta: StateMeta, mounts: list[Mount],
                 secrets: list[SecretMount], ssh: list[SSHMount], proxy_env: pb.ProxyEnv | None,
                 remove_mount_stubs_recursive: bool, constraints: Constraints) -> None:
        super().__init__(constraints)
        self.args, self.meta, self.mounts = args, meta, mounts
        self.secrets, self.ssh, self.proxy_env = secrets, ssh, proxy_env
        self.remove_mount_stubs_recursive = remove_mount_stubs_recursive
        self._outputs: dict[str, int] = {}
        index = 0
        for m in mounts:
            if not (m.no_output or m.readonly or m.cache_id or m.tmpfs):
                self._outputs[m.dest] = index
                index += 1

    def output_for(self, dest: str) -> Output | None:
        if dest not in self._outputs:
            return None
        return Output(self, self._outputs[dest])

    def input_outputs(self) -> list[Output]:
        return [m.source.output for m in self.mounts if m.source is not None and m.source.output is not None]

    def build_op(self, ctx: _MarshalContext) -> pb.Op:
        op = _base_op(self, ctx, self.meta.platform)
        ex = op.exec
        meta = ex.meta
        meta.args.extend(self.args)
        meta.env.extend([f"{k}={v}" for k, v in self.meta.env])
        meta.cwd = self.meta.cwd or "/"
        meta.user = self.meta.user
        meta.hostname = self.meta.hostname
        meta.cgroupParent = self.meta.cgroup_parent
        meta.removeMountStubsRecursive = self.remove_mount_stubs_recursive
        if self.meta.valid_exit_codes is not None:
            meta.validExitCodes.extend(self.meta.valid_exit_codes)
        for host, ip in self.meta.extra_hosts:
            meta.extraHosts.add(Host=host, IP=ip)
        for name, soft, hard in self.meta.ulimits:
            meta.ulimit.add(Name=name, Soft=soft, Hard=hard)
        if self.proxy_env is not None:
            meta.proxy_env.CopyFrom(self.proxy_env)
        ex.network = self.meta.network
        ex.security = self.meta.security
        for m in self.mounts:
            pm = ex.mounts.add(dest=m.dest, readonly=m.readonly, selector=m.selector)
            if m.source is not None and m.source.output is not None:
                inp = ctx.input_for(m.source.output)
                for i, existing in enumerate(op.inputs):
                    if existing == inp:
                        pm.input = i
                        break
                else:
                    op.inputs.append(inp)
                    pm.input = len(op.inputs) - 1
            else:
                pm.input = -1
            pm.output = self._outputs.get(m.dest, -1)
            if m.cache_id:
                pm.mountType = pb.CACHE
                pm.cacheOpt.ID = m.cache_id
                pm.cacheOpt.sharing = m.cache_sharing
            pm.contentCache = m.content_cache
            if m.tmpfs:
                pm.mountType = pb.TMPFS
                pm.TmpfsOpt.size = m.tmpfs_size
        for s in self.secrets:
            if s.env is not None:
                ex.secretenv.add(ID=s.id, name=s.env, optional=s.optional)
            if s.target is not None:
                pm = ex.mounts.add(input=-1, dest=s.target, output=-1, mountType=pb.SECRET)
                pm.secretOpt.ID = s.id
                pm.secretOpt.uid = s.uid
                pm.secretOpt.gid = s.gid
                pm.secretOpt.mode = s.mode
                pm.secretOpt.optional = s.optional
        for index, agent in enumerate(self.ssh):
            target = agent.target or f"/run/buildkit/ssh_agent.{index}"
            pm = ex.mounts.add(input=-1, dest=target, output=-1, mountType=pb.SSH)
            pm.SSHOpt.ID = agent.id
            pm.SSHOpt.uid = agent.uid
            pm.SSHOpt.gid = agent.gid
            pm.SSHOpt.mode = agent.mode
            pm.SSHOpt.optional = agent.optional
        return op


# ---------------------------------------------------------------- file actions


@dataclass(frozen=True)
class ChownOpt:
    user: int | str | None = None
    group: int | str | None = None


@dataclass(frozen=True)
class FileAction:
    """One link of a FileOp chain; `prev` is the action whose result this one modifies."""

    kind: str  # mkdir | mkfile | rm | symlink | copy
    fields: dict
    prev: "FileAction | None" = None
    source: State | None = None  # copy source

    def mkdir(self, path: str, mode: int, **kw: Any) -> "FileAction":
        return mkdir(path, mode, _prev=self, **kw)

    def mkfile(self, path: str, mode: int, data: bytes, **kw: Any) -> "FileAction":
        return mkfile(path, mode, data, _prev=self, **kw)

    def rm(self, path: str, **kw: Any) -> "FileAction":
        return rm(path, _prev=self, **kw)

    def symlink(self, oldpath: str, newpath: str, **kw: Any) -> "FileAction":
        return symlink(oldpath, newpath, _prev=self, **kw)

    def copy(self, source: State, src: str, dest: str, **kw: Any) -> "FileAction":
        return copy(source, src, dest, _prev=self, **kw)

    def chain(self) -> list["FileAction"]:
        out: list[FileAction] = []
        node: FileAction | None = self
        while node is not None:
            out.append(node)
            node = node.prev
        return out[::-1]


def _ts(value: int | None) -> int:
    return -1 if value is None else value


def mkdir(path: str, mode: int, *, make_parents: bool = False, owner: ChownOpt | None = None,
          timestamp: int | None = None, _prev: FileAction | None = None) -> FileAction:
    return FileAction("mkdir", dict(path=path, mode=mode, makeParents=make_parents, owner=owner,
                                    timestamp=_ts(timestamp)), _prev)


def mkfile(path: str, mode: int, data: bytes, *, owner: ChownOpt | None = None,
           timestamp: int | None = None, _prev: FileAction | None = None) -> FileAction:
    return FileAction("mkfile", dict(path=path, mode=mode, data=data, owner=owner,
                                     timestamp=_ts(timestamp)), _prev)


def rm(path: str, *, allow_not_found: bool = False, allow_wildcard: bool = False,
       _prev: FileAction | None = None) -> FileAction:
    return FileAction("rm", dict(path=path, allowNotFound=allow_not_found,
                                 allowWildcard=allow_wildcard), _prev)


def symlink(oldpath: str, newpath: str, *, owner: ChownOpt | None = None,
            timestamp: int | None = None, _prev: FileAction | None = None) -> FileAction:
    return FileAction("symlink", dict(oldpath=oldpath, newpath=newpath, owner=owner,
                                      timestamp=_ts(timestamp)), _prev)


def copy(source: State, src: str, dest: str, *, owner: ChownOpt | None = None,
         mode: int | None = None, mode_str: str = "", follow_symlink: bool = False,
         dir_copy_contents: bool = False, attempt_unpack: bool = False,
         create_dest_path: bool = False, allow_wildcard: bool = False,
         allow_empty_wildcard: bool = False, timestamp: int | None = None,
         include_patterns: Sequence[str] = (), exclude_patterns: Sequence[str] = (),
         always_replace_existing_dest_paths: bool = False, required_paths: Sequence[str] = (),
         _prev: FileAction | None = None) -> FileAction:
    return FileAction("copy", dict(
        src=src, dest=dest, owner=owner, mode=-1 if mode is None else mode, modeStr=mode_str,
        followSymlink=follow_symlink, dirCopyContents=dir_copy_contents,
        attemptUnpackDockerCompatibility=attempt_unpack, createDestPath=create_dest_path,
        allowWildcard=allow_wildcard, allowEmptyWildcard=allow_empty_wildcard,
        timestamp=_ts(timestamp), include_patterns=list(include_patterns),
        exclude_patterns=list(exclude_patterns),
        alwaysReplaceExistingDestPaths=always_replace_existing_dest_paths,
        required_paths=list(required_paths)), _prev, source)


def _abs(cwd: str, path: str) -> str:
    """Resolve `path` against the state's working dir, keeping a trailing slash (Go's llb)."""
    trailing = path.endswith("/") and path != "/"
    joined = posixpath.normpath(posixpath.join("/", cwd or "/", path))
    if joined.startswith("//"):
        joined = joined[1:]
    return joined + "/" if trailing and joined != "/" else joined


class FileVertex(Vertex):
    """A FileOp: the action chain applied on `base` (a State without output is scratch)."""

    def __init__(self, action: FileAction, base: State, constraints: Constraints) -> None:
        super().__init__(constraints)
        self.action = action
        self.base = base

    def input_outputs(self) -> list[Output]:
        outs: list[Output] = []
        if self.base.output is not None:
            outs.append(self.base.output)
        for a in self.action.chain():
            if a.source is not None and a.source.output is not None:
                outs.append(a.source.output)
        return outs

    def build_op(self, ctx: _MarshalContext) -> pb.Op:
        op = _base_op(self, ctx, self.base.meta.platform)
        chain = self.action.chain()
        inputs: list[pb.Input] = []

        def add_input(output: Output | None) -> int:
            if output is None:
                return -1
            inp = ctx.input_for(output)
            for i, existing in enumerate(inputs):
                if existing == inp:
                    return i
            inputs.append(inp)
            return len(inputs) - 1

        plans: list[tuple[int | None, int]] = []  # (input index or None=previous action, secondary)
        for position, a in enumerate(chain):
            primary: int | None
            if position == 0:
                primary = add_input(self.base.output)
            else:
                primary = None
            secondary = add_input(a.source.output) if a.kind == "copy" and a.source is not None else -1
            plans.append((primary, secondary))
        op.inputs.extend(inputs)
        cwd = self.base.meta.cwd
        for position, (a, (primary, secondary)) in enumerate(zip(chain, plans)):
            fa = op.file.actions.add()
            fa.input = primary if primary is not None else len(inputs) + position - 1
            fa.secondaryInput = secondary
            fa.output = 0 if position == len(chain) - 1 else -1
            f = dict(a.fields)
            owner = f.pop("owner", None)
            if a.kind in ("mkdir", "mkfile", "rm"):
                f["path"] = _abs(cwd, f["path"])
            if a.kind == "symlink":
                f["newpath"] = _abs(cwd, f["newpath"])
            if a.kind == "copy":
                src_cwd = a.source.meta.cwd if a.source is not None else "/"
                f["src"] = _abs(src_cwd, f["src"])
                f["dest"] = _abs(cwd, f["dest"])
            msg = getattr(fa, a.kind)
            for key, value in f.items():
                if isinstance(value, list):
                    getattr(msg, key).extend(value)
                else:
                    setattr(msg, key, value)
            if owner is not None:
                _marshal_chown(msg.owner, owner, fa.input)
        return op


def _marshal_chown(target: pb.ChownOpt, owner: ChownOpt, base_input: int) -> None:
    for attr, value in (("user", owner.user), ("group", owner.group)):
        if value is None:
            continue
        user_opt = getattr(target, attr)
        if isinstance(value, int):
            user_opt.byID = value
        else:
            user_opt.byName.name = value
            user_opt.byName.input = base_input


class MergeVertex(Vertex):
    def __init__(self, states: list[State], constraints: Constraints) -> None:
        super().__init__(constraints)
        self.states = states

    def input_outputs(self) -> list[Output]:
        return [s.output for s in self.states if s.output is not None]

    def build_op(self, ctx: _MarshalContext) -> pb.Op:
        op = _base_op(self, ctx)
        for s in self.states:
            if s.output is None:
                continue
            inp = ctx.input_for(s.output)
            for i, existing in enumerate(op.inputs):
                if existing == inp:
                    op.merge.inputs.add(input=i)
                    break
            else:
                op.inputs.append(inp)
                op.merge.inputs.add(input=len(op.inputs) - 1)
        return op


class DiffVertex(Vertex):
    def __init__(self, lower: State, upper: State, constraints: Constraints) -> None:
        super().__init__(constraints)
        self.lower, self.upper = lower, upper

    def input_outputs(self) -> list[Output]:
        return [s.output for s in (self.lower, self.upper) if s.output is not None]

    def build_op(self, ctx: _MarshalContext) -> pb.Op:
        op = _base_op(self, ctx)
        op.diff.SetInParent()
        for name, s in (("lower", self.lower), ("upper", self.upper)):
            side = getattr(op.diff, name)
            if s.output is None:
                side.input = -1
            else:
                op.inputs.append(ctx.input_for(s.output))
                side.input = len(op.inputs) - 1
        return op


# ---------------------------------------------------------------- sources


def scratch() -> State:
    return State()


def image(ref: str, *, platform: Platform | None = None, resolve_mode: str = "",
          record_type: str = "", constraints: Constraints = Constraints()) -> State:
    attrs: dict[str, str] = {}
    if resolve_mode and resolve_mode != "default":
        attrs["image.resolvemode"] = resolve_mode
    if record_type:
        attrs["image.recordtype"] = record_type
    if platform is not None:
        constraints = replace(constraints, platform=platform)
    vertex = SourceVertex("docker-image://" + normalize_image_ref(ref), attrs, constraints)
    return State(Output(vertex), StateMeta(platform=platform))


def oci_layout(ref: str, *, store_id: str, session_id: str = "", platform: Platform | None = None,
               constraints: Constraints = Constraints()) -> State:
    """An image read from an OCI layout the client holds (`--oci-layout STORE=DIR`): `ref` is a
    name with the digest of an index or manifest in that layout, the name only for display."""
    attrs = {"oci.store": store_id}
    if session_id:
        attrs["oci.session"] = session_id
    if platform is not None:
        constraints = replace(constraints, platform=platform)
    vertex = SourceVertex("oci-layout://" + ref, attrs, constraints)
    return State(Output(vertex), StateMeta(platform=platform))


def local(name: str, *, session_id: str = "", include_patterns: Sequence[str] = (),
          exclude_patterns: Sequence[str] = (), follow_paths: Sequence[str] = (),
          shared_key_hint: str = "", differ: str = "", unique: str = "",
          constraints: Constraints = Constraints()) -> State:
    attrs: dict[str, str] = {}
    if session_id:
        attrs["local.session"] = session_id
    if include_patterns:
        attrs["local.includepattern"] = json.dumps(list(include_patterns))
    if exclude_patterns:
        attrs["local.excludepatterns"] = json.dumps(list(exclude_patterns))
    if follow_paths:
        attrs["local.followpaths"] = json.dumps(list(follow_paths))
    if shared_key_hint:
        attrs["local.sharedkeyhint"] = shared_key_hint
    if differ:
        attrs["local.differ"] = differ
    if unique:
        attrs["local.unique"] = unique
    return State(Output(SourceVertex("local://" + name, attrs, constraints)))


def git(remote: str, ref: str = "", *, keep_git_dir: bool = False, subdir: str = "",
        constraints: Constraints = Constraints()) -> State:
    attrs: dict[str, str] = {}
    url = remote
    for scheme in ("https://", "http://", "ssh://", "git://", "file://"):
        if remote.startswith(scheme):
            attrs["git.fullurl"] = remote
            url = remote[len(scheme):]
            break
    if remote.startswith("git@"):
        attrs["git.fullurl"] = remote
        url = remote[len("git@"):].replace(":", "/", 1)
    identifier = "git://" + url.removesuffix("/")
    fragment = ref + (":" + subdir if subdir else "")
    if fragment:
        identifier += "#" + fragment
    if keep_git_dir:
        attrs["git.keepgitdir"] = "true"
    return State(Output(SourceVertex(identifier, attrs, constraints)))


def http(url: str, *, checksum: str = "", filename: str = "", chmod: int | None = None,
         uid: int | None = None, gid: int | None = None,
         constraints: Constraints = Constraints()) -> State:
    attrs: dict[str, str] = {}
    if checksum:
        attrs["http.checksum"] = checksum
    if filename:
        attrs["http.filename"] = filename
    if chmod is not None:
        attrs["http.perm"] = "0" + format(chmod, "o")
    if uid is not None:
        attrs["http.uid"] = str(uid)
    if gid is not None:
        attrs["http.gid"] = str(gid)
    return State(Output(SourceVertex(url, attrs, constraints)))


def merge(states: Iterable[State], constraints: Constraints = Constraints()) -> State:
    items = list(states)
    if not items:
        return scratch()
    return items[0].with_output(Output(MergeVertex(items, constraints)))


def diff(lower: State, upper: State, constraints: Constraints = Constraints()) -> State:
    return upper.with_output(Output(DiffVertex(lower, upper, constraints)))


# ---------------------------------------------------------------- marshalling


def marshal_definition(output: Output | None, platform: Platform | None = None) -> pb.Definition:
    """Post-order DFS from `output`: every op after its inputs, duplicates by digest dropped.

    With an explicit stack: a Dockerfile of a thousand RUN lines is a chain deeper than Python's
    recursion limit, and it must marshal like any other."""
    ctx = _MarshalContext(platform or host_platform())
    definition = pb.Definition()
    seen: set[str] = set()
    source_maps: list[SourceMap] = []

    def emit(vertex: Vertex) -> None:
        op = vertex.build_op(ctx)
        digest, data = op_digest(op)
        checkpoint(len(data))
        ctx.digests[id(vertex)] = digest
        if digest not in seen:
            seen.add(digest)
            getattr(definition, "def").append(data)
        _add_metadata(definition, digest, vertex.constraints, source_maps)

    def visit(root: Vertex) -> None:
        stack: list[tuple[Vertex, bool]] = [(root, False)]
        while stack:
            vertex, inputs_done = stack.pop()
            if id(vertex) in ctx.digests:
                continue
            if inputs_done:
                emit(vertex)
                continue
            stack.append((vertex, True))
            # reversed: the first input is visited (and emitted) first, as a recursive walk would
            stack.extend((out.vertex, False) for out in reversed(vertex.input_outputs())
                         if id(out.vertex) not in ctx.digests)

    if output is not None:
        visit(output.vertex)
        terminal = pb.Op()
        terminal.inputs.append(ctx.input_for(output))
        getattr(definition, "def").append(terminal.SerializeToString(deterministic=True))
    for sm in source_maps:
        definition.Source.infos.add(filename=sm.filename, data=sm.data, language=sm.language)
    return definition


def _add_metadata(definition: pb.Definition, digest: str, c: Constraints,
                  source_maps: list[SourceMap]) -> None:
    if not (c.custom_name or c.ignore_cache or c.description or c.progress_group or c.locations):
        return
    md = definition.metadata[digest]
    if c.ignore_cache:
        md.ignore_cache = True
    for key, value in c.description:
        md.description[key] = value
    if c.custom_name:
        md.description["llb.customname"] = c.custom_name
    if c.progress_group:
        md.progress_group.id, md.progress_group.name, md.progress_group.weak = c.progress_group
    for sm, ranges in c.locations:
        if sm not in source_maps:
            source_maps.append(sm)
        loc = definition.Source.locations[digest].locations.add(sourceIndex=source_maps.index(sm))
        for start, end in ranges:
            r = loc.ranges.add()
            r.start.line = start
            r.end.line = end
