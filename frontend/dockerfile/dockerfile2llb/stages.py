"""Stages of a Dockerfile: meta ARGs, FROM lines, the target and the stages it needs."""
from __future__ import annotations

from dataclasses import dataclass, field

from pybuildkit.frontend.dockerfile.instructions import DockerfileError, Instruction, did_you_mean
from pybuildkit.frontend.dockerfile.instructions.values import is_number


@dataclass
class Stage:
    index: int
    name: str  # lower case, "" when unnamed
    from_instruction: Instruction
    base_raw: str
    platform_raw: str | None
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


def split_stages(instructions: list[Instruction]) -> tuple[list[Instruction], list[Stage]]:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.name == "FROM":
            args = ins.args
            name = args[2].lower() if len(args) == 3 else ""
            platform = ins.flags.get("platform") if ins.flags.get("platform") else None
            stages.append(Stage(len(stages), name, ins, args[0], platform))  # type: ignore[arg-type]
        elif not stages:
            if ins.name != "ARG":
                raise DockerfileError("no build stage in current context" if ins.name != "FROM" else "",
                                      start_line=ins.location[0], end_line=ins.location[1])
            meta.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build")
    return meta, stages


def find_stage(stages: list[Stage], ref: str, *, before: int | None = None) -> Stage | None:
    """A stage by name (case-insensitive) or index, optionally only among earlier stages."""
    limit = len(stages) if before is None else before
    lowered = ref.lower()
    for stage in stages[:limit]:
        if stage.name and stage.name == lowered:
            return stage
    if is_number(ref) and int(ref) < limit:
        return stages[int(ref)]
    return None


def target_stage(stages: list[Stage], target: str | None) -> Stage:
    if not target:
        return stages[-1]
    found = find_stage(stages, target)
    if found is None:
        names = [s.name for s in stages if s.name]
        suggestion = did_you_mean(target, names)
        message = f'target stage "{target}" could not be found'
        raise DockerfileError(message + (f" (did you mean {suggestion}?)" if suggestion else ""))
    return found
