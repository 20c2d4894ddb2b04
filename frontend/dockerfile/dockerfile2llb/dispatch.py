"""One handler per Dockerfile instruction, updating the stage's LLB state and image config."""
from __future__ import annotations

import json
import posixpath
import re
from typing import TYPE_CHECKING

from pybuildkit.frontend.dockerfile.instructions import DockerfileError, Instruction
from pybuildkit.frontend.dockerfile.instructions.values import is_number, parse_int
from pybuildkit.solver.budget import checkpoint
from pybuildkit.solver.llb import builder as llb

if TYPE_CHECKING:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.convert import Converter, StageState

HISTORY_COMMENT = "buildkit.dockerfile.v0"


def history(st: "StageState", created_by: str, *, empty: bool) -> None:
    entry: dict = {"created_by": created_by, "comment": HISTORY_COMMENT}
    if empty:
        entry["empty_layer"] = True
    st.image.setdefault("history", []).append(entry)


def set_env(st: "StageState", key: str, value: str) -> None:
    st.env[key] = value  # an existing key keeps its place, as in upstream's image config
    st.config["Env"] = [f"{k}={v}" for k, v in st.env.items()]


async def dispatch(conv: "Converter", st: "StageState", ins: Instruction, build, *, onbuild: bool = False) -> None:
    checkpoint()
    handler = _HANDLERS.get(ins.name)
    if handler is None:
        raise DockerfileError(f"unsupported instruction {ins.name}")
    await handler(conv, st, ins, build)


async def _env(conv, st, ins, build) -> None:
    args = ins.args
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 2, 3)] if len(args) % 3 == 0 else []
    for key, raw in pairs:
        key = conv.expand(key, st.expansion_env(), ins)
        set_env(st, key, conv.expand(raw, st.expansion_env(), ins))
    history(st, "ENV " + " ".join(f"{k}={st.env.get(conv.expand(k, st.expansion_env(), ins), '')}" for k, _ in pairs),
            empty=True)


async def _label(conv, st, ins, build) -> None:
    args = ins.args
    labels = st.config.setdefault("Labels", {})
    shown = []
    for i in range(0, len(args) - 2, 3):
        key = conv.expand(args[i], st.expansion_env(), ins)
        value = conv.expand(args[i + 1], st.expansion_env(), ins)
        labels[key] = value
        shown.append(f"{key}={value}")
    history(st, "LABEL " + " ".join(shown), empty=True)


async def _arg(conv, st, ins, build) -> None:
    meta_declared = conv.declared_meta()
    meta_env = conv.meta_env(st.platform)
    automatic = conv.platform_args(st.target_platform or st.platform, conv.target_stage_name())
    for arg in ins.args:
        key, has_value, raw = arg.partition("=")
        if key in conv.options.build_args:
            value = conv.options.build_args[key]
        elif has_value:
            value = conv.expand(raw, st.expansion_env(), ins)
        elif key in automatic:
            value = automatic[key]
        elif key in meta_declared and key in meta_env:
            value = meta_env[key]
        else:
            st.args.pop(key, None)  # declared without a value: in scope, but unset
            continue
        st.args[key] = value
    history(st, "ARG " + " ".join(ins.args), empty=True)


def _shell_words(conv, st, ins) -> list[str]:
    if ins.json_form:
        return list(ins.args)
    return st.shell + [ins.args[0] if ins.args else ""]


async def _cmd(conv, st, ins, build) -> None:
    st.config["Cmd"] = _shell_words(conv, st, ins)
    st.cmd_set = True
    history(st, f"CMD {json.dumps(st.config['Cmd'])}", empty=True)


async def _entrypoint(conv, st, ins, build) -> None:
    st.config["Entrypoint"] = _shell_words(conv, st, ins)
    if not st.cmd_set:
        st.config.pop("Cmd", None)
    history(st, f"ENTRYPOINT {json.dumps(st.config['Entrypoint'])}", empty=True)


async def _shell(conv, st, ins, build) -> None:
    st.shell = list(ins.args)
    st.config["Shell"] = list(ins.args)
    history(st, f"SHELL {json.dumps(st.shell)}", empty=True)


async def _user(conv, st, ins, build) -> None:
    st.user = conv.expand(ins.args[0], st.expansion_env(), ins)
    st.config["User"] = st.user
    history(st, f"USER {st.user}", empty=True)


async def _workdir(conv, st, ins, build) -> None:
    path = conv.expand(ins.args[0], st.expansion_env(), ins)
    st.workdir = posixpath.normpath(posixpath.join(st.workdir or "/", path))
    if st.workdir.startswith("//"):
        st.workdir = st.workdir[1:]
    st.config["WorkingDir"] = st.workdir
    owner = None
    if st.user:
        user, _, group = st.user.partition(":")
        owner = llb.ChownOpt(int(user) if is_number(user) else user,
                             (int(group) if is_number(group) else group) if group else None)
    st.state = st.state.file(llb.mkdir(st.workdir, 0o755, make_parents=True, owner=owner),
                             conv.constraints(conv.step_name(st, ins), ins, st.stage))
    history(st, f"WORKDIR {st.workdir}", empty=False)


async def _expose(conv, st, ins, build) -> None:
    ports = st.config.setdefault("ExposedPorts", {})
    for raw in ins.args:
        for word in conv.lex().process_words(raw, st.expansion_env()):
            port, _, proto = word.partition("/")
            proto = (proto or "tcp").lower()
            if "-" in port:
                start, _, end = port.partition("-")
                first = parse_int(f"EXPOSE port range {word}", start, minimum=0, maximum=65535)
                last = parse_int(f"EXPOSE port range {word}", end, minimum=first, maximum=65535)
                for number in range(first, last + 1):
                    ports[f"{number}/{proto}"] = {}
            else:
                if ":" not in port:  # ip:host:container forms are upstream's to reject at run time
                    parse_int(f"EXPOSE port {word}", port, minimum=0, maximum=65535)
                ports[f"{port}/{proto}"] = {}
    history(st, "EXPOSE " + " ".join(sorted(ports)), empty=True)


async def _volume(conv, st, ins, build) -> None:
    volumes = st.config.setdefault("Volumes", {})
    for raw in ins.args:
        path = conv.expand(raw, st.expansion_env(), ins)
        if not path.strip():
            raise DockerfileError("VOLUME specified can not be an empty string")
        volumes[path] = {}
    history(st, f"VOLUME {json.dumps(ins.args)}", empty=True)


async def _stopsignal(conv, st, ins, build) -> None:
    st.config["StopSignal"] = conv.expand(ins.args[0], st.expansion_env(), ins)
    history(st, f"STOPSIGNAL {st.config['StopSignal']}", empty=True)


async def _maintainer(conv, st, ins, build) -> None:
    st.image["author"] = conv.expand(ins.args[0], st.expansion_env(), ins)
    history(st, f"MAINTAINER {st.image['author']}", empty=True)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _duration(name: str, value: str | None) -> int:
    if not value:
        return 0
    total, pos = 0.0, 0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise DockerfileError(f"time: invalid duration {json.dumps(value)}")
    if 0 < total < 1_000_000:
        raise DockerfileError(f"Interval {name} cannot be less than 1ms")
    return int(total)


async def _healthcheck(conv, st, ins, build) -> None:
    kind = ins.args[0].upper()
    if kind == "NONE":
        st.config["Healthcheck"] = {"Test": ["NONE"]}
    else:
        cmd = ins.args[1:]
        test = ["CMD", *cmd] if ins.json_form else ["CMD-SHELL", " ".join(cmd)]
        check: dict = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            value = _duration(flag, ins.flags.get(flag))  # type: ignore[arg-type]
            if value:
                check[key] = value
        if ins.flags.get("retries"):
            retries = parse_int("--retries", str(ins.flags["retries"]))
            if retries < 0:
                raise DockerfileError("--retries cannot be negative")
            check["Retries"] = retries
        st.config["Healthcheck"] = check
    history(st, "HEALTHCHECK " + _go_healthcheck(st.config["Healthcheck"]), empty=True)


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String for the whole-unit values HEALTHCHECK takes."""
    if ns == 0:
        return "0s"
    for unit, size in (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns % size == 0 and ns >= size:
            if unit in ("h", "m") and ns % size == 0:
                hours, rest = divmod(ns, 3600 * 10**9)
                minutes, seconds = divmod(rest, 60 * 10**9)
                text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
                return text + f"{seconds // 10**9}s"
            return f"{ns // size}{unit}"
    return f"{ns / 10**9:g}s"


def _go_healthcheck(check: dict) -> str:
    """fmt's %+v of upstream's HealthConfig, which is what its history records."""
    test = "[" + " ".join(check.get("Test", [])) + "]"
    if check.get("Test") == ["NONE"]:
        return "{Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}"
    parts = [f"Test:{test}"] + [f"{k}:{_go_duration(check.get(k, 0))}"
                                 for k in ("Interval", "Timeout", "StartPeriod", "StartInterval")]
    parts.append(f"Retries:{check.get('Retries', 0)}")
    return "{" + " ".join(parts) + "}"


async def _onbuild(conv, st, ins, build) -> None:
    st.config.setdefault("OnBuild", []).append(ins.args[0])
    history(st, f"ONBUILD {ins.args[0]}", empty=True)


async def _from(conv, st, ins, build) -> None:
    raise DockerfileError("FROM is handled by the stage loader")


async def _run(conv, st, ins, build) -> None:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.run import dispatch_run

    await dispatch_run(conv, st, ins, build)


async def _copy(conv, st, ins, build) -> None:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.copy import dispatch_copy

    await dispatch_copy(conv, st, ins, build)


_HANDLERS = {
    "ENV": _env, "LABEL": _label, "ARG": _arg, "CMD": _cmd, "ENTRYPOINT": _entrypoint, "SHELL": _shell,
    "USER": _user, "WORKDIR": _workdir, "EXPOSE": _expose, "VOLUME": _volume, "STOPSIGNAL": _stopsignal,
    "MAINTAINER": _maintainer, "HEALTHCHECK": _healthcheck, "ONBUILD": _onbuild, "FROM": _from,
    "RUN": _run, "COPY": _copy, "ADD": _copy,
}

