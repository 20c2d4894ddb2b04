"""Maps each top-level code folder to `pybuildkit.<folder>` (DESIGN.md: packaging layout).

setuptools cannot discover packages under a renamed root by itself, so the list is walked here
rather than kept by hand in pyproject.toml.
"""
from pathlib import Path

from setuptools import setup

TOP_LEVEL = ("solver", "worker", "frontend", "appliance", "binfmt")


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for top in TOP_LEVEL:
        for init in sorted(Path(top).rglob("__init__.py")):
            folder = init.parent
            name = "pybuildkit." + ".".join(folder.parts)
            packages.append(name)
            package_dir[name] = str(folder)
    return packages, package_dir


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir)
