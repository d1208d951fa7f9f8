"""Plugin discovery, guarded loading and the registry of components.

Plugins are modules exposed through the entry-point group ``selfsup``
(``[project.entry-points.selfsup] graph = "selfsup_graph.plugin"``). Nothing is
loaded at import time: the registry loads on first use, once. Each plugin is
loaded in its own guard, so one that fails to import, implements a hook with a
wrong signature, or implements a hook that does not exist (a misspelling) is
reported by name with its cause while the others still load. Strict mode turns
any such report into a :class:`~selfsup.errors.PluginLoadError`.

Environment:

- ``SELFSUP_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points except those named
  in the explicit list (core's own components are always there);
- ``SELFSUP_PLUGINS=graph,medical``: load only these entry points;
- ``SELFSUP_STRICT_PLUGINS=1``: strict mode.
"""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from selfsup import hookspecs
from selfsup.components import SPEC_KINDS, BenchmarkSpec
from selfsup.errors import DuplicateKeyError, PluginLoadError, UnknownKeyError

ENTRY_POINT_GROUP = "selfsup"
HOOKS: dict[str, str] = {  # hook name -> component kind it registers
    "register_datasets": "dataset",
    "register_encoders": "encoder",
    "register_pretext_tasks": "pretext",
    "register_evaluators": "evaluator",
    "register_baselines": "baseline",
    "register_benchmarks": "benchmark",
}
#: namespaces of the plugins this project has released, for "install X" hints and the
#: bench's "Plugins not installed" line; a plugin joins when its distribution exists
KNOWN_PLUGINS: dict[str, str] = {
    "medical": "selfsup-medical",
    "graph": "selfsup-graph",
    "molecular": "selfsup-molecular",
    "audio": "selfsup-audio",
    "vision3d": "selfsup-vision3d",
    "remote_sensing": "selfsup-remote-sensing",
}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name, "").strip()
    return [p.strip() for p in raw.split(",") if p.strip()] if raw else None


@dataclass
class PluginReport:
    """What loading one plugin did: its distribution, what it registered, what failed."""

    name: str
    distribution: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def label(self) -> str:
        return f"plugin {self.name!r} ({self.distribution} {self.version})"


class Registry:
    """All registered components, keyed by kind and namespaced key."""

    def __init__(
        self,
        *,
        plugins: Iterable[str] | None = None,
        autoload: bool | None = None,
        strict: bool | None = None,
    ) -> None:
        self._explicit = list(plugins) if plugins is not None else _env_list("SELFSUP_PLUGINS")
        self._autoload = (
            autoload if autoload is not None else not _env_flag("SELFSUP_DISABLE_PLUGIN_AUTOLOAD")
        )
        self.strict = strict if strict is not None else _env_flag("SELFSUP_STRICT_PLUGINS")
        self._pm = pluggy.PluginManager("selfsup")
        self._pm.add_hookspecs(hookspecs)
        self._specs: dict[str, dict[str, Any]] = {kind: {} for kind in SPEC_KINDS}
        self._owner: dict[tuple[str, str], PluginReport] = {}
        self._extra: list[tuple[str, object, str, str]] = []
        self.reports: list[PluginReport] = []
        self._loaded = False

    # -- loading ---------------------------------------------------------------------
    def add_plugin(
        self, plugin: object, name: str, distribution: str = "<local>", version: str = "0"
    ) -> None:
        """Add a plugin object or module without an entry point (tests, notebooks)."""
        if self._loaded:
            self._load_one(name, distribution, version, lambda: plugin)
            self._raise_if_strict()
        else:
            self._extra.append((name, plugin, distribution, version))

    def load(self) -> Registry:
        """Load core and the plugins once; later calls return at once."""
        if self._loaded:
            return self
        self._loaded = True
        import selfsup

        self._load_one("core", "selfsup", selfsup.__version__, _import("selfsup.core_plugin"))
        for name, plugin, dist, version in self._extra:
            self._load_one(name, dist, version, lambda p=plugin: p)  # type: ignore[misc]
        for ep in self._entry_points():
            dist = ep.dist.name if ep.dist is not None else "<unknown>"
            version = ep.dist.version if ep.dist is not None else "?"
            self._load_one(ep.name, dist, version, ep.load)
        self._raise_if_strict()
        return self

    def _entry_points(self) -> list[metadata.EntryPoint]:
        eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        if self._explicit is not None:
            wanted = set(self._explicit)
            found = {ep.name for ep in eps}
            for missing in sorted(wanted - found):
                report = PluginReport(missing, "<not installed>", "-")
                hint = KNOWN_PLUGINS.get(missing)
                report.errors.append(
                    f"no installed plugin is named {missing!r}"
                    + (f"; install {hint}" if hint else f"; installed: {sorted(found)}")
                )
                self.reports.append(report)
            return [ep for ep in eps if ep.name in wanted]
        return eps if self._autoload else []

    def _load_one(
        self, name: str, dist: str, version: str, load: Callable[[], object]
    ) -> None:
        clash = next((r for r in self.reports if r.name == name and r.ok), None)
        if clash is not None:
            # two distributions behind one namespace would register the same keys
            raise DuplicateKeyError(
                f"plugin name {name!r} (keys '{name}.*') is provided by both "
                f"{clash.distribution} {clash.version} and {dist} {version}; "
                "uninstall one of the two distributions"
            )
        report = PluginReport(name, dist, version)
        self.reports.append(report)
        try:
            plugin = load()
        except Exception as exc:  # a broken plugin must not stop the others
            report.errors.append(f"failed to import: {_describe(exc)}")
            return
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            report.errors.append(f"invalid hook implementation: {exc}")
            return
        except ValueError as exc:
            report.errors.append(f"could not be registered: {exc}")
            return
        for caller in self._pm.get_hookcallers(plugin) or []:
            if caller.name not in HOOKS:
                close = difflib.get_close_matches(caller.name, list(HOOKS), n=1)
                report.errors.append(
                    f"implements unknown hook {caller.name!r}"
                    + (f"; did you mean {close[0]!r}?" if close else f"; hooks are {list(HOOKS)}")
                )
        if report.errors:
            self._pm.unregister(plugin)
            return
        for hook_name, kind in HOOKS.items():
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(register=self._register_callback(report, kind))
                except DuplicateKeyError:
                    raise
                except Exception as exc:
                    report.errors.append(f"{hook_name} raised: {_describe(exc)}")

    def _register_callback(self, report: PluginReport, kind: str) -> Callable[[Any], None]:
        spec_type = SPEC_KINDS[kind]

        def register(spec: Any) -> None:
            if not isinstance(spec, spec_type):  # a plugin passing the wrong spec kind
                raise TypeError(
                    f"{report.label()}: register() in the {kind} hook takes a "
                    f"{spec_type.__name__}, got {type(spec).__name__}"
                )
            key = spec.name
            if not key.startswith(report.name + "."):
                raise ValueError(
                    f"{report.label()}: key {key!r} must be namespaced by the plugin name, "
                    f"e.g. {report.name + '.' + key.rsplit('.', 1)[-1]!r}"
                )
            previous = self._owner.get((kind, key))
            if previous is not None:
                raise DuplicateKeyError(
                    f"{kind} {key!r} is registered twice: by {previous.distribution} "
                    f"{previous.version} and by {report.distribution} {report.version}; "
                    "uninstall one of them or rename the key"
                )
            self._specs[kind][key] = spec
            self._owner[(kind, key)] = report
            report.registered.setdefault(kind, []).append(key)

        return register

    def _raise_if_strict(self) -> None:
        if self.strict:
            failed = [r for r in self.reports if not r.ok]
            if failed:
                lines = [f"{r.label()}: {e}" for r in failed for e in r.errors]
                raise PluginLoadError("plugin load errors (strict mode):\n  " + "\n  ".join(lines))

    # -- queries ---------------------------------------------------------------------
    def keys(self, kind: str) -> list[str]:
        self._check_kind(kind)
        self.load()
        return sorted(self._specs[kind])

    def get(self, kind: str, key: str) -> Any:
        """The spec registered under ``key``; unknown keys get a helpful error."""
        self._check_kind(kind)
        self.load()
        try:
            return self._specs[kind][key]
        except KeyError:
            raise UnknownKeyError(self._unknown_message(kind, key)) from None

    def specs(self, kind: str) -> list[Any]:
        return [self.get(kind, key) for key in self.keys(kind)]

    def owner(self, kind: str, key: str) -> PluginReport:
        self.get(kind, key)
        return self._owner[(kind, key)]

    def benchmarks(self) -> list[BenchmarkSpec]:
        return list(self.specs("benchmark"))

    def versions(self) -> dict[str, str]:
        """Distribution versions of the loaded plugins (for the exported encoder card)."""
        self.load()
        return {r.distribution: r.version for r in self.reports if r.ok}

    def _unknown_message(self, kind: str, key: str) -> str:
        available = sorted(self._specs[kind])
        close = difflib.get_close_matches(key, available, n=1, cutoff=0.6)
        msg = f"Unknown {kind} {key!r}."
        if close:
            msg += f" Did you mean {close[0]!r}?"
        namespace = key.split(".", 1)[0]
        if namespace in KNOWN_PLUGINS and not any(r.name == namespace for r in self.reports):
            msg += f" It would come from the plugin {KNOWN_PLUGINS[namespace]}: install it."
        msg += f" Available: {', '.join(available) if available else '(none)'}"
        return msg

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in SPEC_KINDS:
            raise ValueError(f"unknown component kind {kind!r}; kinds are {list(SPEC_KINDS)}")


def _import(module: str) -> Callable[[], ModuleType]:
    def load() -> ModuleType:
        import importlib

        return importlib.import_module(module)

    return load


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first call."""
    global _default
    if _default is None:
        _default = Registry()
    return _default.load()


def set_registry(registry: Registry | None) -> None:
    """Replace (or with None, reset) the process-wide registry."""
    global _default
    _default = registry
