"""The `dockerfile.v0` frontend: frontend attributes in, one LLB definition per platform out."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.checks.linter import report
from pybuildkit.frontend.dockerfile.dockerfile2llb.convert import Converter, Options
from pybuildkit.frontend.dockerfile.dockerignore import read_dockerignore
from pybuildkit.frontend.dockerfile.instructions import DockerfileError
from pybuildkit.frontend.dockerfile.instructions.values import parse_int
from pybuildkit.frontend.dockerfile.parser import detect_syntax
from pybuildkit.frontend.dockerfile.shell.lex import DEFAULT_MAX_EXPANSION
from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform, PlatformError, host_platform, parse_platform

BUILTIN_SYNTAX = ("docker/dockerfile", "docker.io/docker/dockerfile")

__all__ = ["DockerfileError", "FrontendInputs", "FrontendResult", "build"]


@dataclass(frozen=True)
class FrontendInputs:
    dockerfile: bytes
    dockerfile_name: str
    dockerignore: bytes | None
    attrs: Mapping[str, str]
    session_id: str = ""
    build_platform: Platform = field(default_factory=host_platform)
    resolve_image_config: Callable[[str, Platform], Awaitable[tuple[str, dict]]] | None = None
    local_dockerignores: Mapping[str, bytes] = field(default_factory=dict)  # of named `local:` contexts
    max_expansion: int = DEFAULT_MAX_EXPANSION  # the daemon's [frontend] max-expansion-size


@dataclass
class FrontendResult:
    platforms: list[Platform]
    definitions: list[pb.Definition]
    image_configs: list[dict]
    warnings: list = field(default_factory=list)
    entitlements: set[str] = field(default_factory=set)
    check_report: str | None = None  # `method=check`: BuildKit's check output instead of a build
    check_failed: bool = False


CHECK_METHODS = ("check",)  # `--opt method=check`, as `docker build --check` sends it
CHECK_REQUEST = "frontend.lint"  # the same request by its subrequest name (`--opt requestid=...`)


def is_check_request(attrs: Mapping[str, str]) -> bool:
    return attrs.get("method") in CHECK_METHODS or attrs.get("requestid") == CHECK_REQUEST


def _options(inputs: FrontendInputs) -> Options:
    attrs = dict(inputs.attrs)
    build_args = {k[len("build-arg:"):]: v for k, v in attrs.items() if k.startswith("build-arg:")}
    labels = {k[len("label:"):]: v for k, v in attrs.items() if k.startswith("label:")}
    try:
        platforms = [parse_platform(p) for p in attrs.get("platform", "").split(",") if p.strip()]
    except PlatformError as exc:
        raise DockerfileError(f"failed to parse target platform {attrs.get('platform')}: {exc.message}") from None
    no_cache: set[str] | None = None
    if "no-cache" in attrs:
        value = attrs["no-cache"].strip()
        no_cache = set() if value in ("", "true") else {s.strip().lower() for s in value.split(",")}
    hosts = []
    for item in filter(None, (h.strip() for h in attrs.get("add-hosts", "").split(","))):
        host, sep, ip = item.partition("=") if "=" in item else item.partition(":")
        if not sep:
            raise DockerfileError(f"invalid host {item!r}: expected host=ip")
        hosts.append((host, ip))
    ulimits = []
    for item in filter(None, (u.strip() for u in attrs.get("ulimit", "").split(","))):
        name, _, limits = item.partition("=")
        soft, _, hard = limits.partition(":")
        ulimits.append((name, parse_int(f"ulimit {name}", soft), parse_int(f"ulimit {name}", hard or soft)))
    shm = attrs.get("shm-size")
    return Options(
        build_args=build_args, target=attrs.get("target") or None,
        platforms=platforms or [inputs.build_platform], build_platform=inputs.build_platform,
        labels=labels, no_cache=no_cache, session_id=inputs.session_id,
        dockerignore=read_dockerignore(inputs.dockerignore) if inputs.dockerignore else [],
        named_contexts={k: v for k, v in attrs.items() if k.startswith("context:")},
        extra_hosts=hosts, network=attrs.get("force-network-mode") or None,
        shm_size=parse_int("shm-size", shm, minimum=0) if shm else None, ulimits=ulimits,
        max_expansion=inputs.max_expansion,
        local_dockerignores={name: read_dockerignore(data) for name, data in inputs.local_dockerignores.items()})


async def build(inputs: FrontendInputs) -> FrontendResult:
    try:
        return await _build(inputs)
    except DockerfileError as exc:
        if exc.source is None:
            exc.source = inputs.dockerfile
        raise


async def _build(inputs: FrontendInputs) -> FrontendResult:
    ref, _, location, found = detect_syntax(inputs.dockerfile)
    warnings: list = []
    if found:
        name = ref.split("@", 1)[0].rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref.split("@", 1)[0]
        if name not in BUILTIN_SYNTAX:
            raise DockerfileError(f"unsupported syntax image {ref!r}: external frontends are not supported yet",
                                  filename=inputs.dockerfile_name, start_line=location[0] if location else 0,
                                  hint="remove the # syntax= line or use docker/dockerfile:<version>")
        warnings.append(f"using the built-in Dockerfile frontend for # syntax={ref}")
    options = _options(inputs)
    checking = is_check_request(inputs.attrs)
    options.convert_all_stages = checking
    source_map = llb.SourceMap(inputs.dockerfile_name, inputs.dockerfile, "Dockerfile")
    converter = Converter(inputs.dockerfile, inputs.dockerfile_name, options, inputs.resolve_image_config,
                          source_map)
    result = FrontendResult([], [], [], warnings)
    try:
        for platform in options.platforms:
            state, image = await converter.convert(platform)
            result.platforms.append(platform)
            result.definitions.append(state.marshal(platform))
            result.image_configs.append(image)
    except DockerfileError as exc:
        if not checking:
            raise
        # A check reports what it found and then the error that stops a build, as BuildKit's does.
        exc.source = exc.source or inputs.dockerfile
        found = report(converter.lint.warnings, inputs.dockerfile, inputs.dockerfile_name)
        result.warnings.extend(converter.lint.warnings)
        result.check_report = found + "\n" + (exc.excerpt() + "\n" if exc.excerpt() else "") + exc.message + "\n"
        result.check_failed = True
        return result
    result.entitlements = set(converter.entitlements)
    result.warnings.extend(converter.lint.warnings)
    if checking:
        result.check_report = report(converter.lint.warnings, inputs.dockerfile, inputs.dockerfile_name)
        result.check_failed = bool(converter.lint.warnings)
        return result
    failure = converter.lint.error()
    if failure is not None:  # shown at the check directive, as BuildKit does
        raise failure.located(inputs.dockerfile_name, *converter.check_directive_lines())
    return result
