"""The CPU flavour's pins (packaging/cpu-constraints.txt) stay installable beside pyproject.toml.

The CPU build installs PyTorch's CPU-only wheels first, then the project with that constraints file
(README, "Packaged program"). That only works while each pin is a ``+cpu`` build of a release that
pyproject.toml's own pin accepts; a torch bump in pyproject.toml that forgets the constraints file
would make pip refuse the install (or, without the file, silently take the multi-GB CUDA build).
This test reads both files and the installed torchvision's metadata; it installs nothing.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "packaging" / "cpu-constraints.txt"
# Packages whose PyPI Linux wheels are CUDA builds, so the CPU flavour must take them from PyTorch's index.
CUDA_ON_PYPI = {"torch", "torchvision", "torchaudio"}


def _constraints() -> dict[str, Requirement]:
    reqs = [Requirement(line.split("#")[0].strip())
            for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines() if line.split("#")[0].strip()]
    return {canonicalize_name(r.name): r for r in reqs}


def _pinned(req: Requirement) -> Version:
    """The version of a ``name==X`` requirement; fails the test for anything else."""
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{req} in {CONSTRAINTS.name} is not an exact pin"
    return Version(specs[0].version)


def _project_deps() -> dict[str, Requirement]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, deps)}


def test_every_cuda_on_pypi_dependency_is_pinned_to_a_cpu_build():
    deps, pins = _project_deps(), _constraints()
    needed = CUDA_ON_PYPI & deps.keys()
    assert needed, "pyproject.toml no longer depends on torch: drop packaging/cpu-constraints.txt"
    assert needed <= pins.keys(), f"{sorted(needed - pins.keys())} missing from {CONSTRAINTS}"
    for name in needed:
        assert _pinned(pins[name]).local == "cpu", f"{pins[name]}: the CPU flavour needs the '+cpu' build"


def test_each_cpu_pin_satisfies_pyprojects_own_pin():
    deps = _project_deps()
    for name, pin in _constraints().items():
        assert name in deps, f"{pin} constrains a package pyproject.toml does not depend on"
        version = _pinned(pin)
        assert deps[name].specifier.contains(version, prereleases=True), (
            f"{CONSTRAINTS.name} pins {pin} but pyproject.toml asks for {deps[name]}: pip would refuse "
            f"`pip install -c {CONSTRAINTS.relative_to(REPO)} -e .`; bump both together")


def test_the_pinned_torchvision_accepts_the_pinned_torch():
    pins = _constraints()
    tv = _pinned(pins["torchvision"])
    try:
        installed = metadata.distribution("torchvision")
    except metadata.PackageNotFoundError:
        pytest.skip("torchvision is not installed: its metadata tells which torch it accepts")
    if Version(installed.version).public != tv.public:
        pytest.skip(f"installed torchvision {installed.version} is not the pinned {tv.public}")
    torch_reqs = [Requirement(r) for r in installed.requires or [] if canonicalize_name(Requirement(r).name) == "torch"]
    assert torch_reqs, "torchvision's metadata names no torch requirement"
    torch = _pinned(pins["torch"])
    for req in torch_reqs:
        assert req.specifier.contains(torch, prereleases=True), f"torchvision {tv} requires {req}, pinned torch is {torch}"
