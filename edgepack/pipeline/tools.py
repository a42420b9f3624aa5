"""The tools a build depends on: every converter environment (toolchain) by what it serves,
and the versions reported with each build. This is where toolchains are discovered: from the
targets, the importers and the emulator, all below the pipeline."""

from __future__ import annotations

import importlib.metadata

from edgepack.errors import EdgepackError

CORE_PACKAGES = ("numpy", "onnx", "onnxruntime", "onnxsim", "onnxslim")


def toolchain_groups() -> dict[str, list]:
    """Every isolated environment, by what it serves: a target's name (its converters), an
    importer's framework (e.g. tensorflow), the emulator."""
    from edgepack.emulation import SYSROOT
    from edgepack.importers import all_importer_toolchains
    from edgepack.targets import all_targets

    groups = {t.name: list(t.toolchains) for t in all_targets() if t.toolchains}
    for chain in all_importer_toolchains():
        groups.setdefault(chain.purpose, []).append(chain)
    groups[SYSROOT.purpose] = [SYSROOT]
    return groups


def toolchains_for(name: str) -> list:
    """The toolchains of a target or importer framework, or one toolchain by its own name."""
    chains = toolchain_groups()
    if name in chains:
        return chains[name]
    for group in chains.values():
        for chain in group:
            if chain.name == name:
                return [chain]
    known = ", ".join([*chains, *(c.name for group in chains.values() for c in group)])
    raise EdgepackError(f"unknown toolchain '{name}'; known: {known or 'none'}")


def tool_versions() -> dict[str, str]:
    """Versions of the core packages, every target's packages and installed toolchains."""
    from edgepack.targets import all_targets

    packages = list(CORE_PACKAGES)
    targets = all_targets()
    for target in targets:
        packages += [p for p in target.packages if p not in packages]
    tools = {}
    for name in packages:
        try:
            tools[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    for target in targets:
        for chain in target.toolchains:
            if chain.installed():
                tools[f"toolchain {chain.name}"] = ", ".join(
                    f"{p} {chain.version(p)}" for p in chain.shown if chain.version(p))
    return tools
