"""Dockerfile to LLB: one graph and one image config per target platform."""
from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.checks import Linter, parse_check_config
from pybuildkit.frontend.dockerfile.checks import static
from pybuildkit.frontend.dockerfile.dockerfile2llb import dispatch, namedcontext
from pybuildkit.frontend.dockerfile.dockerfile2llb.encoding import check_utf8
from pybuildkit.frontend.dockerfile.dockerfile2llb.stages import Stage, find_stage, split_stages, target_stage
from pybuildkit.frontend.dockerfile.instructions import DockerfileError, Instruction, did_you_mean, parse_instruction
from pybuildkit.frontend.dockerfile.parser import DockerfileParseError, parse
from pybuildkit.frontend.dockerfile.shell import Lex, ShellError, env_from_list
from pybuildkit.frontend.dockerfile.shell.lex import DEFAULT_MAX_EXPANSION
from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.llb.imageref import InvalidReferenceError, normalize_image_ref
from pybuildkit.solver.platforms import Platform, PlatformError, parse_platform

DEFAULT_PATH = llb.DEFAULT_PATH
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")

# Variables BuildKit never reports as undefined: the automatic platform ARGs and the proxy ARGs.
NON_ENV_ARGS = frozenset({"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT", "BUILDOSVERSION",
                          "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "TARGETOSVERSION",
                          "TARGETSTAGE", *PROXY_ARGS})

Resolver = Callable[[str, Platform], Awaitable[tuple[str, dict]]]


def resolving_once(resolver: Resolver) -> Resolver:
    """`resolver` asked once per (reference, platform) in a conversion, as BuildKit's image meta
    resolver: stages on one base image share the answer (and its `load metadata` step), and
    concurrent stages wait for the one lookup in flight."""
    lookups: dict[tuple[str, str], asyncio.Future[tuple[str, dict]]] = {}

    async def resolve(ref: str, platform: Platform) -> tuple[str, dict]:
        key = (ref, str(platform))
        if key not in lookups:
            lookups[key] = asyncio.ensure_future(resolver(ref, platform))
        return await asyncio.shield(lookups[key])

    return resolve


@dataclass
class Options:
    build_args: dict[str, str]
    target: str | None
    platforms: list[Platform]
    build_platform: Platform
    labels: dict[str, str]
    no_cache: set[str] | None  # None: no stage; empty set: all stages
    session_id: str
    dockerignore: list[str]
    named_contexts: dict[str, str]
    extra_hosts: list[tuple[str, str]]
    network: str | None
    shm_size: int | None
    ulimits: list[tuple[str, int, int]]
    local_dockerignores: dict[str, list[str]] = field(default_factory=dict)  # named local contexts
    convert_all_stages: bool = False  # `method=check`: every stage is converted (and checked)
    max_expansion: int = DEFAULT_MAX_EXPANSION  # characters a word may gain from variables


@dataclass
class StageState:
    stage: Stage
    platform: Platform
    state: llb.State
    image: dict  # OCI image config document (architecture, os, config, history)
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = ""
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    steps: int = 0
    total: int = 0
    cmd_set: bool = False
    target_platform: Platform | None = None

    @property
    def config(self) -> dict:
        return self.image["config"]

    def expansion_env(self) -> dict[str, str]:
        return {**self.args, **self.env}


class Converter:
    def __init__(self, dockerfile: bytes, filename: str, options: Options, resolver: Resolver | None,
                 source_map: llb.SourceMap) -> None:
        self.filename = filename
        self.options = options
        self.resolver = resolving_once(resolver) if resolver is not None else None
        self.source_map = source_map
        try:
            result = parse(dockerfile, filename=filename)
        except DockerfileParseError as exc:
            raise DockerfileError(exc.message, filename=filename, start_line=exc.start_line,
                                  end_line=exc.end_line) from None
        check_utf8(dockerfile if isinstance(dockerfile, bytes) else dockerfile.encode("utf-8", "surrogateescape"),
                   result.ast, filename)
        self.escape = result.escape_token
        self.warnings = result.warnings
        self.directives = result.directives
        instructions = []
        for child in result.ast.children:
            try:
                instructions.append(parse_instruction(child))
            except DockerfileError as exc:
                raise exc.located(filename, child.start_line, child.end_line) from None
        self.meta_args, self.stages = split_stages(instructions)
        self.entitlements: set[str] = set()
        self.multi_platform = len(options.platforms) > 1
        check_text = options.build_args.get("BUILDKIT_DOCKERFILE_CHECK", self.directives.check)
        try:
            self.lint = Linter(parse_check_config(check_text))
        except DockerfileError as exc:
            raise exc.located(filename, *self.check_directive_lines()) from None
        self._linting: StageState | None = None  # the stage whose instruction is being converted
        self._static_checks()

    def check_directive_lines(self) -> tuple[int, int]:
        """Where the `# check=` directive is (0, 0 without one): errors about checks point there."""
        text = self.source_map.data.decode("utf-8", "replace") if isinstance(self.source_map.data, bytes) else ""
        for number, line in enumerate(text.split("\n"), start=1):
            if line.lstrip("#").strip().lower().startswith("check="):
                return number, number
        return 0, 0

    def _static_checks(self) -> None:
        """The build checks that need only the Dockerfile (see checks.static)."""
        platform = self.options.platforms[0]
        meta = self.meta_env(platform)
        defaults = self.platform_args(platform, self.target_stage_name())
        for ins in self.meta_args:
            for arg in ins.args:
                key, has_value, value = arg.partition("=")
                if has_value:
                    try:
                        defaults[key] = self.lex().process_word(value, defaults)
                    except ShellError:
                        pass
        parents: dict[int, int] = {}
        for stage in self.stages:
            try:
                base = self.lex().process_word(stage.base_raw, meta)
            except ShellError:
                continue
            parent = find_stage(self.stages, base, before=stage.index)
            if parent is not None and parent is not stage:
                parents[stage.index] = parent.index
        static.check_parse_warnings(self.lint, self.warnings)
        static.check_casing(self.lint, self.stages)
        static.check_stage_names(self.lint, self.stages)
        static.check_instructions(self.lint, self.stages, self.meta_args, parents)
        static.check_from(self.lint, self.stages, self.lex(), meta, list(self.declared_meta()), defaults,
                          [s.name for s in self.stages if s.name])

    def lex(self) -> Lex:
        return Lex(self.escape, max_expansion=self.options.max_expansion)

    def expand(self, word: str, env: Mapping[str, str], ins: Instruction | None = None) -> str:
        try:
            if self._linting is None or ins is None or ins.name == "FROM":
                return self.lex().process_word(word, env)
            result = self.lex().process_word_with_matches(word, env)
        except ShellError as exc:
            raise self.error(exc.message, ins) from None
        self._report_undefined(result.unmatched, env, ins)
        return result.result

    def _report_undefined(self, unmatched: set[str], env: Mapping[str, str], ins: Instruction) -> None:
        """UndefinedVar: a variable the frontend expands that no ARG declared and no ENV set."""
        st = self._linting
        if not unmatched or st is None:
            return
        declared = {arg.partition("=")[0] for other in st.stage.instructions if other.name == "ARG"
                    and other.location[0] < ins.location[0] for arg in other.args}
        for name in sorted(unmatched - declared - NON_ENV_ARGS):
            suggestion = did_you_mean(name, sorted(env), case_insensitive=False)
            self.lint.run("UndefinedVar", f"Usage of undefined variable '${name}'"
                          + (f" (did you mean ${suggestion}?)" if suggestion else ""), ins.location)

    async def resolve(self, ref: str, platform: Platform, what: str) -> tuple[str, dict]:
        """The resolver's (pinned reference, image config) for `ref`, errors as DockerfileError."""
        assert self.resolver is not None
        try:
            return await self.resolver(ref, platform)
        except DockerfileError:
            raise
        except Exception as exc:  # the worker's typed errors, whatever their class
            message = getattr(exc, "message", str(exc))
            raise DockerfileError(f"{what} {ref}: failed to resolve source metadata: {message}") from None

    def expand_heredoc(self, body: str, env: Mapping[str, str], ins: Instruction | None = None) -> str:
        """A COPY/ADD heredoc body with an unquoted delimiter: variables expand and backslashes
        escape, but quotes are plain text (as in a shell here-document), hence no quote removal."""
        lex = self.lex()
        lex.skip_process_quotes = True
        try:
            return lex.process_word(body, env)
        except ShellError as exc:
            raise self.error(exc.message, ins) from None

    def error(self, message: str, ins: Instruction | None) -> DockerfileError:
        start, end = ins.location if ins is not None else (0, 0)
        return DockerfileError(message, filename=self.filename, start_line=start, end_line=end)

    def platform_args(self, target: Platform, stage_name: str = "") -> dict[str, str]:
        bp = self.options.build_platform
        return {
            "BUILDPLATFORM": str(bp), "BUILDOS": bp.os, "BUILDARCH": bp.architecture,
            "BUILDVARIANT": bp.variant, "BUILDOSVERSION": bp.os_version,
            "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.architecture,
            "TARGETVARIANT": target.variant, "TARGETOSVERSION": target.os_version,
            "TARGETSTAGE": stage_name,
        }

    def target_stage_name(self) -> str:
        return target_stage(self.stages, self.options.target).name or "default"

    def meta_env(self, target: Platform) -> dict[str, str]:
        env = self.platform_args(target, self.target_stage_name())
        for ins in self.meta_args:
            for arg in ins.args:
                key, has_value, value = arg.partition("=")
                if key in self.options.build_args:
                    env[key] = self.options.build_args[key]
                elif has_value:
                    env[key] = self.expand(value, env, ins)
                elif key not in env:
                    env.pop(key, None)
        for key, value in self.options.build_args.items():
            if key in env and key.startswith(("BUILD", "TARGET")):
                env[key] = value
        return env

    def declared_meta(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for ins in self.meta_args:
            for arg in ins.args:
                key, has_value, value = arg.partition("=")
                out[key] = value if has_value else None
        return out

    async def convert(self, platform: Platform) -> tuple[llb.State, dict]:
        target = target_stage(self.stages, self.options.target)
        meta = self.meta_env(platform)
        self._check_cycles(target)
        states: dict[int, StageState] = {}

        async def build(stage: Stage) -> StageState:
            if stage.index in states:
                return states[stage.index]
            result = await self._stage(stage, platform, meta, build)
            states[stage.index] = result
            return result

        final = await build(target)
        if self.options.convert_all_stages:
            for stage in self.stages:
                await build(stage)
        image = copy.deepcopy(final.image)
        for key, value in self.options.labels.items():
            image["config"].setdefault("Labels", {})[key] = value
        return final.state, image

    def _deps(self, stage: Stage) -> list[Stage]:
        deps: list[Stage] = []
        meta = self.declared_meta()
        base = stage.base_raw
        try:
            base = self.lex().process_word(base, {k: v for k, v in meta.items() if v is not None})
        except ShellError:
            pass
        found = find_stage(self.stages, base, before=stage.index)
        if found is not None and found is not stage:
            deps.append(found)
        for ins in stage.instructions:
            sources = []
            if ins.name in ("COPY", "ADD") and ins.flags.get("from"):
                sources.append(str(ins.flags["from"]))
            if ins.name == "RUN":
                for mount in ins.flags.get("mount", []):  # type: ignore[union-attr]
                    for part in mount.split(","):
                        if part.strip().startswith("from="):
                            sources.append(part.split("=", 1)[1])
            for src in sources:
                dep = find_stage(self.stages, src)
                if dep is not None:
                    deps.append(dep)
        return deps

    def _check_cycles(self, target: Stage) -> None:
        visiting: set[int] = set()
        done: set[int] = set()

        def visit(stage: Stage) -> None:
            if stage.index in done:
                return
            if stage.index in visiting:
                raise DockerfileError(f"circular dependency detected on stage: {stage.display_name}")
            visiting.add(stage.index)
            for dep in self._deps(stage):
                visit(dep)
            visiting.discard(stage.index)
            done.add(stage.index)

        for stage in self.stages[: target.index + 1]:  # in file order, as upstream reports cycles
            if stage.index in self._needed(target):
                visit(stage)

    def _needed(self, target: Stage) -> set[int]:
        needed: set[int] = set()
        pending = [target]
        while pending:
            stage = pending.pop()
            if stage.index in needed:
                continue
            needed.add(stage.index)
            pending.extend(self._deps(stage))
        return needed

    async def _stage(self, stage: Stage, target_platform: Platform, meta: dict[str, str], build) -> StageState:
        ins = stage.from_instruction
        base_ref = self.expand(stage.base_raw, meta, ins)
        platform = target_platform
        if stage.platform_raw:
            try:
                platform = parse_platform(self.expand(stage.platform_raw, meta, ins))
            except PlatformError as exc:
                raise self.error(exc.message, ins) from None
        parent = find_stage(self.stages, base_ref, before=stage.index)
        total = len(stage.instructions) + 1
        prefix = self.prefix(stage, platform)
        replacement = namedcontext.find(self.options.named_contexts, stage.name, platform) if stage.name else None
        if replacement is not None:  # `context:STAGE=...` stands for the whole stage
            try:
                loaded = await namedcontext.load(self, replacement, platform, self.options.local_dockerignores)
            except DockerfileError as exc:
                raise exc.located(self.filename, *ins.location) from None
            st = self._named_stage(stage, platform, loaded, total)
            st.target_platform = target_platform
            return st
        named = None
        if parent is None or parent is stage:
            named = namedcontext.find(self.options.named_contexts, base_ref, platform) if base_ref else None
        if named is not None:
            try:
                loaded = await namedcontext.load(self, named, platform, self.options.local_dockerignores)
            except DockerfileError as exc:
                raise exc.located(self.filename, *ins.location) from None
            st = self._named_stage(stage, platform, loaded, total)
            for trigger in st.config.pop("OnBuild", None) or []:
                await self._onbuild(st, trigger, build)
        elif parent is not None and parent is not stage:
            parent_state = await build(parent)
            st = StageState(stage, platform, parent_state.state, copy.deepcopy(parent_state.image),
                            dict(parent_state.env), {}, parent_state.workdir, parent_state.user,
                            list(parent_state.shell), 0, total)
            for trigger in st.config.pop("OnBuild", None) or []:
                await self._onbuild(st, trigger, build)
        elif base_ref.lower() == "scratch":
            image = {"architecture": platform.architecture, "os": platform.os, "config": {"Env": [f"PATH={DEFAULT_PATH}"], "WorkingDir": "/"},
                     "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            if platform.variant:
                image["variant"] = platform.variant
            st = StageState(stage, platform, llb.scratch().platform(platform), image, {"PATH": DEFAULT_PATH},
                            total=total)
        else:
            if not base_ref:
                raise self.error("base name (${" + stage.base_raw.strip("${}") + "}) should not be blank", ins)
            ref = base_ref
            try:
                canonical = normalize_image_ref(ref)
            except InvalidReferenceError as exc:
                raise self.error(exc.message, ins) from None
            config: dict = {}
            pinned = canonical
            if self.resolver is not None:
                try:
                    digest_ref, config = await self.resolver(canonical, platform)
                except Exception as exc:
                    message = getattr(exc, "message", str(exc))
                    located = self.error(f"{canonical}: failed to resolve source metadata: {message}", ins)
                    located.hint = getattr(exc, "hint", None)  # what to fix (credentials, CA) stays with it
                    raise located from None
                name_part = canonical.split("@")[0]
                pinned = name_part + "@" + digest_ref.split("@", 1)[1] if "@" in digest_ref else canonical
                self._check_base_platform(ref, platform, config, ins)
            image = {"architecture": platform.architecture, "os": platform.os,
                     "config": copy.deepcopy(config.get("config") or {}), "rootfs": {"type": "layers", "diff_ids": []},
                     "history": copy.deepcopy(config.get("history") or [])}
            if platform.variant:
                image["variant"] = platform.variant
            env = env_from_list(image["config"].get("Env") or [])
            if "PATH" not in env and platform.os != "windows":
                env["PATH"] = DEFAULT_PATH
                image["config"]["Env"] = _env_list(env)
            state = llb.image(pinned, platform=platform, constraints=self.constraints(
                f"{prefix}1/{total}] FROM {pinned}", ins, stage))
            st = StageState(stage, platform, state, image, env, {}, image["config"].get("WorkingDir") or "/",
                            image["config"].get("User") or "", list(image["config"].get("Shell") or ["/bin/sh", "-c"]),
                            total=total)
            for trigger in image["config"].get("OnBuild") or []:
                await self._onbuild(st, trigger, build)
            image["config"].pop("OnBuild", None)
        st.steps = 1
        st.target_platform = target_platform
        for ins in stage.instructions:
            st.steps += 1
            self._linting = st
            try:
                await dispatch.dispatch(self, st, ins, build)
            except DockerfileError as exc:
                raise exc.located(self.filename, *ins.location) from None
            finally:
                self._linting = None
        return st

    def _check_base_platform(self, ref: str, expected: Platform, config: dict, ins: Instruction) -> None:
        """InvalidBaseImagePlatform: the registry gave an image for another OS or architecture."""
        os_, arch = config.get("os"), config.get("architecture")
        if not os_ or not arch:
            return
        actual = Platform(os_, arch, config.get("variant", "") or "").normalized()
        wanted = expected.normalized()
        if (actual.os, actual.architecture) != (wanted.os, wanted.architecture):
            self.lint.run("InvalidBaseImagePlatform", f'Base image {ref} was pulled with platform "{actual}", '
                          f'expected "{wanted}" for current build', ins.location)

    def _named_stage(self, stage: Stage, platform: Platform, loaded: namedcontext.LoadedContext,
                     total: int) -> StageState:
        """A stage whose base is a named context: its image config when it is an image, else the
        empty image's (as `FROM scratch`)."""
        source = loaded.image or {}
        image = {"architecture": platform.architecture, "os": platform.os,
                 "config": copy.deepcopy(source.get("config") or {}), "rootfs": {"type": "layers", "diff_ids": []},
                 "history": copy.deepcopy(source.get("history") or [])}
        if platform.variant:
            image["variant"] = platform.variant
        env = env_from_list(image["config"].get("Env") or [])
        if "PATH" not in env and platform.os != "windows":
            env["PATH"] = DEFAULT_PATH
            image["config"]["Env"] = _env_list(env)
        image["config"].setdefault("WorkingDir", image["config"].get("WorkingDir") or "/")
        config = image["config"]
        st = StageState(stage, platform, loaded.state, image, env, {}, config.get("WorkingDir") or "/",
                        config.get("User") or "", list(config.get("Shell") or ["/bin/sh", "-c"]), total=total)
        st.steps = 1
        return st

    async def _onbuild(self, st: StageState, trigger: str, build) -> None:
        try:
            result = parse(trigger + "\n", filename=self.filename)
        except DockerfileParseError as exc:
            raise DockerfileError(f"failed to parse ONBUILD trigger: {exc.message}") from None
        for child in result.ast.children:
            ins = parse_instruction(child, in_onbuild=True)
            await dispatch.dispatch(self, st, ins, build, onbuild=True)

    def prefix(self, stage: Stage, platform: Platform) -> str:
        text = "["
        if self.multi_platform:
            text += f"{platform} "
        if len(self.stages) > 1:
            text += f"{stage.display_name} "
        return text

    def step_name(self, st: StageState, ins: Instruction) -> str:
        return f"{self.prefix(st.stage, st.platform)}{st.steps}/{st.total}] {ins.original.strip()}"

    def constraints(self, name: str, ins: Instruction, stage: Stage, *, ignore_cache: bool | None = None) -> llb.Constraints:
        no_cache = self.options.no_cache
        ignore = ignore_cache if ignore_cache is not None else (
            no_cache is not None and (not no_cache or stage.name in no_cache))
        return llb.Constraints(custom_name=name, ignore_cache=ignore,
                               locations=((self.source_map, (ins.location,)),))


def _env_list(env: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]
