"""Dockerfile instructions: validation, flags and upstream error texts."""
from pybuildkit.frontend.dockerfile.instructions.errors import DockerfileError, did_you_mean, with_suggestion
from pybuildkit.frontend.dockerfile.instructions.parse import INSTRUCTIONS, Instruction, parse_instruction
from pybuildkit.frontend.dockerfile.instructions.runmount import MountSpec, parse_mount

__all__ = ["DockerfileError", "INSTRUCTIONS", "Instruction", "MountSpec", "did_you_mean", "parse_instruction",
           "parse_mount", "with_suggestion"]
