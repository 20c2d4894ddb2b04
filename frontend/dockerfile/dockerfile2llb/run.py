"""RUN: shell and exec form, heredocs, --mount of every type, --network and --security."""
from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from pybuildkit.frontend.dockerfile.dockerfile2llb import namedcontext
from pybuildkit.frontend.dockerfile.dockerfile2llb.dispatch import history
from pybuildkit.frontend.dockerfile.dockerfile2llb.stages import find_stage
from pybuildkit.frontend.dockerfile.instructions import DockerfileError, Instruction, parse_mount
from pybuildkit.frontend.dockerfile.parser import chomp_heredoc_content, must_parse_heredoc
from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.pb import ops_pb2 as pb

if TYPE_CHECKING:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.convert import Converter, StageState

PROXY_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy"}
SHARING = {"shared": pb.SHARED, "private": pb.PRIVATE, "locked": pb.LOCKED}


def _abs(workdir: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(workdir or "/", path))


async def source_state(conv: "Converter", st: "StageState", ref: str, ins: Instruction, build) -> llb.State:
    """The state a `--from` / `from=` names: a stage, a named context, or an image."""
    stage = find_stage(conv.stages, ref)
    if stage is not None:
        if stage.index >= st.stage.index:
            raise DockerfileError(f"cannot copy from stage {ref!r}, it needs to be defined before current stage "
                                  f"{st.stage.display_name!r}")
        return (await build(stage)).state
    named = namedcontext.find(conv.options.named_contexts, ref, st.platform)
    if named is not None:
        return (await namedcontext.load(conv, named, st.platform, conv.options.local_dockerignores)).state
    if ref == "context":
        return context_state(conv)
    return llb.image(ref, platform=st.platform, constraints=llb.Constraints(custom_name=f"[internal] load {ref}"))


def context_state(conv: "Converter", include: list[str] | None = None) -> llb.State:
    return llb.local("context", session_id=conv.options.session_id, shared_key_hint="context",
                     exclude_patterns=conv.options.dockerignore, include_patterns=include or (),
                     constraints=llb.Constraints(custom_name="[internal] load build context"))


async def dispatch_run(conv: "Converter", st: "StageState", ins: Instruction, build) -> None:
    env = st.expansion_env()
    mounts: list[llb.Mount] = []
    secrets: list[llb.SecretMount] = []
    ssh: list[llb.SSHMount] = []
    argv = await _argv(conv, st, ins, mounts)
    for raw in ins.flags.get("mount", []):  # type: ignore[union-attr]
        if re.search(r"(^|,)from=[^,]*\$", raw):
            raise DockerfileError("'from' doesn't support variable expansion, define alias stage instead")
        spec = parse_mount(raw, lambda word: conv.expand(word, env, ins))
        target = _abs(st.workdir, spec.target) if spec.target else ""
        if spec.type == "secret":
            secrets.append(llb.SecretMount(spec.id, target=target or None, env=spec.env,
                                           uid=spec.uid or 0, gid=spec.gid or 0,
                                           mode=spec.mode if spec.mode is not None else 0o400,
                                           optional=not spec.required))
            continue
        if spec.type == "ssh":
            ssh.append(llb.SSHMount(spec.id, target=target, uid=spec.uid or 0, gid=spec.gid or 0,
                                    mode=spec.mode if spec.mode is not None else 0o600, optional=not spec.required))
            continue
        if spec.type == "tmpfs":
            mounts.append(llb.Mount(target, tmpfs=True, tmpfs_size=spec.size))
            continue
        source = await source_state(conv, st, spec.from_, ins, build) if spec.from_ else None
        selector = spec.source.lstrip("/") if spec.source else ""
        if spec.type == "cache":
            if source is None and (spec.uid is not None or spec.gid is not None or spec.mode is not None):
                owner = llb.ChownOpt(spec.uid or 0, spec.gid or 0)
                source = llb.scratch().file(llb.mkdir("/cache", spec.mode if spec.mode is not None else 0o755,
                                                      owner=owner))
                selector = "cache"
            mounts.append(llb.Mount(target, source, selector=selector, readonly=bool(spec.readonly),
                                    cache_id=spec.id or target, cache_sharing=SHARING[spec.sharing]))
            continue
        if source is None:
            source = context_state(conv)
        readonly = True if spec.readonly is None else spec.readonly
        mounts.append(llb.Mount(target, source, selector=selector, readonly=readonly, no_output=not readonly))
    network = {"none": pb.NONE, "host": pb.HOST, "default": pb.UNSET, "sandbox": pb.UNSET}
    wanted = str(ins.flags.get("network") or conv.options.network or "default")
    if wanted not in network:
        raise DockerfileError(f"unsupported network mode {wanted!r}")
    security = str(ins.flags.get("security") or "sandbox")
    if security not in ("sandbox", "insecure"):
        raise DockerfileError(f"unsupported security mode {security!r}")
    if network[wanted] == pb.HOST:
        conv.entitlements.add("network.host")
    if security == "insecure":
        conv.entitlements.add("security.insecure")
    run_env = dict(st.env)
    proxy = pb.ProxyEnv()
    has_proxy = False
    for key, value in st.args.items():
        if key in run_env:
            continue
        run_env[key] = value
    for key, value in conv.options.build_args.items():
        if key in PROXY_ARGS and key not in st.args:
            setattr(proxy, key.lower(), value)
            has_proxy = True
    constraints = conv.constraints(conv.step_name(st, ins), ins, st.stage)
    run = st.state.run(
        argv, mounts=mounts, secrets=secrets, ssh=ssh, proxy_env=proxy if has_proxy else None,
        constraints=constraints, env=tuple(run_env.items()), cwd=st.workdir or "/", user=st.user,
        network=network[wanted], security=pb.INSECURE if security == "insecure" else pb.SANDBOX,
        extra_hosts=tuple(conv.options.extra_hosts), ulimits=tuple(conv.options.ulimits),
        platform=st.platform)
    st.state = run.root()
    shown = " ".join(argv) if not ins.json_form else repr(argv)
    history(st, f"RUN {shown} # buildkit", empty=False)


async def _argv(conv: "Converter", st: "StageState", ins: Instruction, mounts: list[llb.Mount]) -> list[str]:
    """The process of a RUN step.

    A command that is exactly one heredoc runs its body: as a script when it starts with `#!`,
    else through the stage's shell. Anything else is handed to the shell as the heredoc script it
    is (command line, then each body and its delimiter), so the shell does what a shell does with
    heredocs: expand unquoted bodies, keep quoted ones, strip tabs for `<<-`, open other fds.
    """
    if ins.json_form:
        return list(ins.args)
    command = ins.args[0] if ins.args else ""
    if not ins.heredocs:
        return st.shell + [command]
    if must_parse_heredoc(command.strip()) is not None:
        doc = ins.heredocs[0]
        content = chomp_heredoc_content(doc.content) if doc.chomp else doc.content
        if content.startswith("#!"):
            files = llb.scratch().file(llb.mkfile(f"/{doc.name}", 0o755, content.encode()))
            mounts.append(llb.Mount("/dev/pipes", files, readonly=True))
            return [f"/dev/pipes/{doc.name}"]
        return st.shell + [content]
    script = command + "".join(f"\n{doc.content}{doc.name}" for doc in ins.heredocs)
    return st.shell + [script]
