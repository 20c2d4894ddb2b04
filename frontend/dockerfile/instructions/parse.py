"""AST nodes to validated instructions: argument counts, flags, upstream error texts."""
from __future__ import annotations

from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.instructions.errors import DockerfileError, with_suggestion
from pybuildkit.frontend.dockerfile.parser import Heredoc, Node

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
FLAGS: dict[str, dict[str, str]] = {  # name -> kind: "str", "bool", "list"
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str", "device": "list"},
    "COPY": {"from": "str", "chown": "str", "chmod": "str", "link": "bool", "parents": "bool", "exclude": "list"},
    "ADD": {"chown": "str", "chmod": "str", "link": "bool", "checksum": "str", "keep-git-dir": "bool",
            "exclude": "list", "unpack": "bool"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str", "start-interval": "str",
                    "retries": "str"},
}
EXACTLY_ONE = ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL")
AT_LEAST_ONE = ("ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME", "ARG")


@dataclass
class Instruction:
    name: str  # upper case
    args: list[str]
    flags: dict[str, object]
    node: Node
    json_form: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    onbuild: "Instruction | None" = None

    @property
    def original(self) -> str:
        return self.node.original

    @property
    def location(self) -> tuple[int, int]:
        return self.node.start_line, self.node.end_line


def parse_flags(name: str, raw: list[str]) -> dict[str, object]:
    allowed = FLAGS.get(name, {})
    out: dict[str, object] = {k: [] for k, kind in allowed.items() if kind == "list"}
    for item in raw:
        if not item.startswith("--"):
            raise DockerfileError(f"Arg {item!r} must start with --")
        key, has_value, value = item[2:].partition("=")
        kind = allowed.get(key)
        if kind is None:
            raise DockerfileError(with_suggestion(f"unknown flag: --{key}", key, allowed))
        if kind == "bool":
            if has_value and value.lower() not in ("true", "false"):
                raise DockerfileError(f"expecting boolean value for flag {key}, not: {value}")
            out[key] = (value.lower() != "false") if has_value else True
        elif kind == "list":
            out[key].append(value)  # type: ignore[union-attr,attr-defined]
        else:
            if key in out:
                raise DockerfileError(f"Duplicate flag specified: {key}")
            if not has_value:
                raise DockerfileError(f"Missing a value on flag: {item}")
            out[key] = value
    return out


def parse_instruction(node: Node, *, in_onbuild: bool = False) -> Instruction:
    name = node.value.upper()
    if name not in INSTRUCTIONS:
        raise DockerfileError(with_suggestion(f"unknown instruction: {node.value}", node.value, INSTRUCTIONS))
    if name == "ONBUILD":
        if node.next is None or not node.next.children:
            raise DockerfileError("ONBUILD requires at least one argument")
        inner_node = node.next.children[0]
        inner_name = inner_node.value.upper()
        if inner_name == "ONBUILD":
            raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if inner_name in ("FROM", "MAINTAINER"):
            raise DockerfileError(f"{inner_name} isn't allowed as an ONBUILD trigger")
        inner = parse_instruction(inner_node, in_onbuild=True)
        return Instruction(name, [inner_node.original], {}, node, onbuild=inner)
    args = node.args()
    flags = parse_flags(name, node.flags)
    json_form = bool(node.attributes.get("json"))
    if name in EXACTLY_ONE and len(args) != 1:
        raise DockerfileError(f"{name} requires exactly one argument")
    if name in AT_LEAST_ONE and not args:
        raise DockerfileError(f"{name} requires at least one argument")
    if name in ("ADD", "COPY"):
        if not args or (len(args) < 2 and not node.heredocs):
            raise DockerfileError(f"{name} requires at least two arguments, but only one was provided. "
                                  "Destination could not be determined")
    if name == "FROM" and len(args) not in (1, 3):
        raise DockerfileError("FROM requires either one or three arguments")
    if name == "FROM" and len(args) == 3 and args[1].lower() != "as":
        raise DockerfileError("FROM requires either one or three arguments")
    if name == "HEALTHCHECK" and args and args[0].upper() == "NONE" and len(args) > 1:
        raise DockerfileError("HEALTHCHECK NONE takes no arguments")
    if name == "HEALTHCHECK" and args and args[0].upper() not in ("NONE", "CMD"):
        raise DockerfileError(f"Unknown type {args[0]!r} in HEALTHCHECK (try CMD)")
    if name == "SHELL" and not json_form:
        raise DockerfileError("SHELL requires the arguments to be in JSON form")
    if name in ("RUN", "CMD", "ENTRYPOINT") and not args and not node.heredocs and name == "RUN":
        raise DockerfileError("RUN requires at least one argument")
    return Instruction(name, args, flags, node, json_form, list(node.heredocs))
