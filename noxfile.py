"""Sessions: lint, typecheck, tests-<distribution> (one per distribution), integration, bench.

Each ``tests-*`` session installs core plus one distribution into its own virtual
environment, so a dependency a plugin forgot to declare shows up there. Plugins
are discovered from ``plugins/*/pyproject.toml``: a new plugin needs no edit here.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
# The CPU build of torch that lies on this machine's disk; package metadata states
# ranges, the pin lives here. Pinned in the same pip command as anything depending
# on torch, so pip never resolves a multi-GB CUDA build instead.
TORCH = ("torch==2.13.0",)
PLUGINS = sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
DISTRIBUTIONS = ["core", *PLUGINS]

nox.options.sessions = ["lint", "typecheck", *[f"tests-{d}" for d in DISTRIBUTIONS],
                        "integration"]
nox.options.reuse_existing_virtualenvs = False


def _path(dist: str) -> str:
    return "core" if dist == "core" else f"plugins/{dist}"


def _install(session: nox.Session, *dists: str) -> None:
    args: list[str] = []
    for dist in dict.fromkeys(("core", *dists)):
        args += ["-e", f"{_path(dist)}[test]" if dist == "core" else _path(dist)]
    session.install(*TORCH, "pytest>=8", *args)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every distribution's sources, with everything installed."""
    _install(session, *PLUGINS)
    session.install("mypy>=1.10")
    session.run("mypy", *[f"{_path(d)}/src" for d in DISTRIBUTIONS])


def _make_tests(dist: str) -> None:
    def tests(session: nox.Session) -> None:
        _install(session, dist)
        session.run("pytest", f"{_path(dist)}/tests", *session.posargs,
                    env={"SELFSUP_STRICT_PLUGINS": "1"})

    installed = " and ".join(dict.fromkeys(("core", dist)))
    tests.__doc__ = f"Tests of {dist}, with only {installed} installed."
    nox.session(name=f"tests-{dist}")(tests)


for _dist in DISTRIBUTIONS:
    _make_tests(_dist)


@nox.session
def integration(session: nox.Session) -> None:
    """Every distribution installed together: cross-package tests and a short bench.

    setuptools: the plugin-guide test pip-installs the guide's example plugin without
    build isolation (nothing is downloaded at test time).
    """
    _install(session, *PLUGINS)
    session.install("setuptools>=77")
    session.run("pytest", "tests", *session.posargs, env={"SELFSUP_STRICT_PLUGINS": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Everything installed, then the benchmark scripts and ``selfsup bench``."""
    _install(session, *PLUGINS)
    session.run("python", "benchmarks/trainer_overhead.py")
    session.run("python", "benchmarks/plugin_loading.py")
    session.run("selfsup", "bench", "--out", "bench-results", *session.posargs)
