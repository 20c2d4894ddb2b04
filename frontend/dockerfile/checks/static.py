"""The build checks that need only the Dockerfile itself (BuildKit runs them as it parses and
dispatches; their outcome does not depend on the images or the context).

The checks that need the build's state (UndefinedVar, InvalidBaseImagePlatform) run in the
converter, where that state exists.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pybuildkit.frontend.dockerfile.checks.linter import Linter
from pybuildkit.frontend.dockerfile.instructions import Instruction, did_you_mean
from pybuildkit.frontend.dockerfile.shell import Lex, ShellError
from pybuildkit.solver.llb.imageref import InvalidReferenceError, normalize_image_ref
from pybuildkit.solver.platforms import PlatformError, parse_platform

if TYPE_CHECKING:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.stages import Stage
    from pybuildkit.frontend.dockerfile.parser import ParseWarning

RESERVED_STAGE_NAMES = ("context", "scratch")
_SECRET = re.compile(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)"
                     r"(?:_|$)")
_SECRET_ALLOWED = re.compile(r"(?i)(?:_|^)(?:public)(?:_|$)")
_NO_EMPTY_CONTINUATION = "no-empty-continuation"


def _consistent(word: str) -> bool:
    return word in (word.lower(), word.upper())


def _keyword(ins: Instruction) -> str:
    """The instruction keyword as the Dockerfile spells it."""
    return ins.node.value


def check_parse_warnings(lint: Linter, warnings: Sequence[ParseWarning]) -> None:
    for warning in warnings:
        if _NO_EMPTY_CONTINUATION in (warning.url or ""):
            lint.run("NoEmptyContinuation", "Empty continuation line", (warning.start_line, warning.end_line))


def check_casing(lint: Linter, stages: Sequence[Stage]) -> None:
    """ConsistentInstructionCasing: every keyword is all-lower or all-upper, like the majority."""
    keywords = [(stage.from_instruction, _keyword(stage.from_instruction)) for stage in stages]
    keywords += [(ins, _keyword(ins)) for stage in stages for ins in stage.instructions]
    lower = sum(1 for _, word in keywords if _consistent(word) and word == word.lower())
    upper = sum(1 for _, word in keywords if _consistent(word) and word != word.lower())
    majority_lower = lower > upper
    for ins, word in keywords:
        if majority_lower and word != word.lower():
            lint.run("ConsistentInstructionCasing",
                     f"Command '{word}' should match the case of the command majority (lowercase)", ins.location)
        elif not majority_lower and word != word.upper():
            lint.run("ConsistentInstructionCasing",
                     f"Command '{word}' should match the case of the command majority (uppercase)", ins.location)


def check_stage_names(lint: Linter, stages: Sequence[Stage]) -> None:
    seen: set[str] = set()
    for stage in stages:
        ins = stage.from_instruction
        if len(ins.args) == 3:
            keyword, as_word, name = _keyword(ins), ins.args[1], ins.args[2]
            if _consistent(keyword) and as_word != (as_word.lower() if keyword == keyword.lower() else as_word.upper()):
                lint.run("FromAsCasing", f"'{as_word}' and '{keyword}' keywords' casing do not match", ins.location)
            if name != name.lower():
                lint.run("StageNameCasing", f"Stage name '{name}' should be lowercase", ins.location)
        if stage.name:
            if stage.name in RESERVED_STAGE_NAMES:
                lint.run("ReservedStageName",
                         f'Stage name should not use the same name as reserved stage "{stage.name}"', ins.location)
            if stage.name in seen:
                lint.run("DuplicateStageName",
                         f'Duplicate stage name "{stage.name}", stage names should be unique', ins.location)
            seen.add(stage.name)


def _secret(lint: Linter, instruction: str, key: str, ins: Instruction) -> None:
    if _SECRET.search(key) and not _SECRET_ALLOWED.search(key):
        lint.run("SecretsUsedInArgOrEnv",
                 f'Do not use ARG or ENV instructions for sensitive data ({instruction} "{key}")', ins.location)


def _key_value_pairs(ins: Instruction) -> list[tuple[str, str, str]]:
    """ENV/LABEL arguments as (key, value, separator); the separator is '' in the legacy form."""
    args = ins.args
    return [(args[i], args[i + 1], args[i + 2]) for i in range(0, len(args) - 2, 3)]


def check_instructions(lint: Linter, stages: Sequence[Stage], meta_args: Sequence[Instruction],
                       stage_parent: Mapping[int, int]) -> None:
    """Per-instruction rules: MAINTAINER, legacy ENV/LABEL, secrets in ARG/ENV, EXPOSE, JSON
    CMD/ENTRYPOINT, repeated CMD/ENTRYPOINT/HEALTHCHECK, relative WORKDIR."""
    for ins in meta_args:
        for arg in ins.args:
            _secret(lint, "ARG", arg.partition("=")[0], ins)
    has_shell: dict[int, bool] = {}
    workdir_set: dict[int, bool] = {}
    for stage in stages:
        parent = stage_parent.get(stage.index)
        shell = has_shell.get(parent, False) if parent is not None else False
        workdir = workdir_set.get(parent, False) if parent is not None else False
        last: dict[str, Instruction] = {}
        for ins in stage.instructions:
            name = ins.name
            if name == "MAINTAINER":
                lint.run("MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label",
                         ins.location)
            elif name in ("ENV", "LABEL"):
                pairs = _key_value_pairs(ins)
                if any(sep == "" for _, _, sep in pairs):
                    word = _keyword(ins)
                    lint.run("LegacyKeyValueFormat",
                             f'"{word} key=value" should be used instead of legacy "{word} key value" format',
                             ins.location)
                if name == "ENV":
                    for key, _, _ in pairs:
                        _secret(lint, "ENV", key, ins)
            elif name == "ARG":
                for arg in ins.args:
                    _secret(lint, "ARG", arg.partition("=")[0], ins)
            elif name == "SHELL":
                shell = True
            elif name == "EXPOSE":
                for port in ins.args:
                    if "$" in port:
                        continue
                    if port.count(":") >= 1:
                        lint.run("ExposeInvalidFormat",
                                 f"EXPOSE instruction should not define an IP address or host-port mapping, "
                                 f"found '{port}'", ins.location)
                    proto = port.partition("/")[2]
                    if proto and proto != proto.lower():
                        lint.run("ExposeProtoCasing",
                                 f"Defined protocol '{port}' in EXPOSE instruction should be lowercase", ins.location)
            elif name == "WORKDIR":
                path = ins.args[0] if ins.args else ""
                if not workdir and path and not path.startswith(("/", "$")):
                    lint.run("WorkdirRelativePath",
                             f'Relative workdir "{path}" can have unexpected results if the base image changes',
                             ins.location)
                workdir = True
            if name in ("CMD", "ENTRYPOINT") and not ins.json_form and not shell:
                lint.run("JSONArgsRecommended",
                         f"JSON arguments recommended for {_keyword(ins)} to prevent unintended behavior related "
                         f"to OS signals", ins.location)
            if name in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
                if name in last:
                    lint.run("MultipleInstructionsDisallowed",
                             f"Multiple {_keyword(ins)} instructions should not be used in the same stage because "
                             f"only the last one will be used", last[name].location)
                last[name] = ins
        has_shell[stage.index] = shell
        workdir_set[stage.index] = workdir


def check_from(lint: Linter, stages: Sequence[Stage], lex: Lex, meta_env: Mapping[str, str],
               declared: Sequence[str], default_env: Mapping[str, str], stage_names: Sequence[str]) -> None:
    """FROM: undeclared ARGs, defaults that give no image, redundant or constant --platform."""
    known = set(declared) | set(meta_env)
    for stage in stages:
        ins = stage.from_instruction
        for raw in (stage.base_raw, stage.platform_raw or ""):
            if not raw:
                continue
            try:
                result = lex.process_word_with_matches(raw, meta_env)
            except ShellError:
                continue
            for name in sorted(result.unmatched - known):
                suggestion = did_you_mean(name, sorted(known), case_insensitive=False)
                lint.run("UndefinedArgInFrom", f"FROM argument '{name}' is not declared"
                         + (f" (did you mean {suggestion}?)" if suggestion else ""), ins.location)
        if "$" in stage.base_raw:
            try:
                base = lex.process_word(stage.base_raw, default_env)
                if base.lower() not in stage_names and base.lower() != "scratch":
                    normalize_image_ref(base)
            except (ShellError, InvalidReferenceError):
                lint.run("InvalidDefaultArgInFrom",
                         f"Default value for ARG {stage.base_raw} results in empty or invalid base image name",
                         ins.location)
        if stage.platform_raw:
            try:
                result = lex.process_word_with_matches(stage.platform_raw, meta_env)
            except ShellError:
                continue
            if result.matched == {"TARGETPLATFORM"} and not result.unmatched \
                    and result.result == meta_env.get("TARGETPLATFORM"):
                lint.run("RedundantTargetPlatform",
                         f"Setting platform to predefined {stage.platform_raw} in FROM is redundant as this is the "
                         f"default behavior", ins.location)
            elif not result.matched and not result.unmatched:
                try:
                    platform = parse_platform(result.result)
                except PlatformError:
                    continue
                if platform.os in stage.name or platform.architecture in stage.name:
                    continue
                lint.run("FromPlatformFlagConstDisallowed",
                         f'FROM --platform flag should not use constant value "{result.result}"', ins.location)
