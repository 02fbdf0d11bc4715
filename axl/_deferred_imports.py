"""Deferred imports of py-libp2p's optional parts, for a process that runs a node.

Importing py-libp2p imports every transport and service it ships: QUIC (``aioquic``),
WebSocket, mDNS (``zeroconf``), AutoTLS and ACME (``httpx``, ``requests``), RSA keys
(``pycryptodome``), DNS (``dnspython``, which imports ``aioquic`` again), Prometheus and
``psutil``. An AXL node uses TCP, Noise, yamux, GossipSub and Kademlia. The rest cost a node
≈ 0.4 s of CPU at start-up, which a swarm of processes starting together on one machine
pays once per process.

:func:`defer_optional_imports` makes the imports of those modules *by py-libp2p, multiaddr
and dnspython* return stand-ins (:class:`Deferred`) that import the real module the first
time they are used: called, subclassed, read from, indexed, or asked ``isinstance`` of an
object that could be an instance. Nothing is left out: a stand-in behaves as the object it
stands for, and once it is resolved the importing modules' globals are rebound to the real
object. A program that imports these modules itself gets the real modules.

What a stand-in does not do:

- ``is`` and ``==`` compare the stand-in, not the object it stands for, until the importing
  module's globals are rebound (at the first resolution of anything from the same package).
- ``isinstance(x, stand_in)`` is ``False`` without importing while the module that defines
  the class has not been imported: no instance of it can exist yet.
- It cannot be caught (``except stand_in``) before it is resolved, nor be a value. So a
  constant (``NAME_WITH_UNDERSCORES``) is imported at once, ``EAGER_MODULES`` are never
  deferred, and a test compares every other deferred exception class or value in the
  installed py-libp2p, multiaddr and dnspython with a reviewed list.
- An ``except ImportError`` around a deferred import is not taken for a missing attribute
  (a missing top-level package still raises at the import statement).

``axl`` and ``python -m agents`` call :func:`defer_optional_imports` before anything else;
``AXL_EAGER_IMPORTS=1`` in the environment turns it off.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import os
import sys
import threading
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

#: Modules whose import by py-libp2p, multiaddr or dnspython is deferred (a name and its
#: submodules).
OPTIONAL_MODULES: tuple[str, ...] = (
    # py-libp2p's optional transports and services
    "libp2p.transport.quic",
    "libp2p.transport.websocket",
    "libp2p.discovery.mdns",
    "libp2p.discovery.bootstrap",
    "libp2p.security.tls.autotls",
    # what they and the rest of py-libp2p import
    "aioquic",
    "Crypto",
    "dns",
    "trio_websocket",
    "websockets",
    "zeroconf",
    "httpx",
    "requests",
    "prometheus_client",
    "psutil",
    "multiaddr.resolvers",
)
#: The packages whose imports are deferred.
IMPORTERS: tuple[str, ...] = ("libp2p", "multiaddr", "dns")
#: Imported now all the same: py-libp2p's streams catch these exceptions (an ``except``
#: needs the class itself), and the module is light.
EAGER_MODULES: tuple[str, ...] = ("libp2p.transport.quic.exceptions",)

#: Attributes that ``typing`` probes on the arguments of ``Union`` and ``X | Y``: a stand-in
#: has none of them, like the plain class it stands for.
_TYPING_PROBES = frozenset(
    {"__origin__", "__args__", "__parameters__", "__forward_arg__", "__typing_subst__"}
)
_UNSET: Any = object()
_get = object.__getattribute__
_set = object.__setattr__


def _constant(name: str) -> bool:
    """``CONTENT_TYPE``, ``H3_ALPN``: a constant by its name (``AES``, ``SHA256`` are modules)."""
    return "_" in name.strip("_") and name.isupper()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class Deferred:
    """Stands for the module or attribute at ``path`` until it is used (see the module's
    docstring)."""

    __slots__ = ("_children", "_imports", "_path", "_real")

    def __init__(self, path: str, imports: DeferredImports) -> None:
        _set(self, "_path", path)
        _set(self, "_real", _UNSET)
        _set(self, "_children", {})  # names the import statements took: deferred too
        _set(self, "_imports", imports)

    def __repr__(self) -> str:
        state = "resolved" if _get(self, "_real") is not _UNSET else "deferred"
        return f"<{state} import {_get(self, '_path')}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            if name.startswith("__typing") or name in _TYPING_PROBES:
                raise AttributeError(name)
            if name == "__mro_entries__":  # subclassed: the real base class
                return lambda bases: (_resolve(self),)
            return getattr(_resolve(self), name)
        if _get(self, "_real") is _UNSET:
            child = _get(self, "_children").get(name)
            if child is not None:  # ``from a import name`` or ``import a.name``
                return child
        # any other attribute is read now, from the real object, so that a constant is a
        # constant and ``getattr(obj, name, default)`` and ``hasattr`` keep their meaning
        return getattr(_resolve(self), name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(_resolve(self), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(_resolve(self), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _resolve(self)(*args, **kwargs)

    def __instancecheck__(self, instance: object) -> bool:
        return _could_exist(self) and isinstance(instance, _resolve(self))

    def __subclasscheck__(self, subclass: type) -> bool:
        return _could_exist(self) and issubclass(subclass, _resolve(self))

    def __or__(self, other: object) -> Any:  # ``Deferred | None`` in an annotation
        return typing.Union[self, other]  # noqa: UP007 (``|`` would call this again)

    def __ror__(self, other: object) -> Any:
        return typing.Union[other, self]  # noqa: UP007

    def __getitem__(self, key: object) -> Any:
        return _resolve(self)[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(_resolve(self))

    def __contains__(self, item: object) -> bool:
        return item in _resolve(self)

    def __len__(self) -> int:
        return len(_resolve(self))


def resolve(value: Any) -> Any:
    """The object ``value`` stands for, imported now if need be (``value`` itself if it is
    not a :class:`Deferred`)."""
    return _resolve(value) if isinstance(value, Deferred) else value


def _resolve(stand_in: Deferred) -> Any:
    real = _get(stand_in, "_real")
    if real is _UNSET:
        path: str = _get(stand_in, "_path")
        try:
            real = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            # ``a.b.C`` where ``C`` is an attribute: the error names ``a.b.C`` (or a prefix
            # of it that is an attribute too)
            parent, _, name = path.rpartition(".")
            if not parent or exc.name is None or not _within(path, exc.name):
                raise
            owner = _resolve(_get(stand_in, "_imports").stand_in(parent))
            if not hasattr(owner, name):
                raise  # neither a module nor an attribute: the import's own error
            real = getattr(owner, name)
        _set(stand_in, "_real", real)
        _get(stand_in, "_imports").rebind(path.partition(".")[0])
    return real


def _loaded(stand_in: Deferred) -> Any:
    """The object ``stand_in`` stands for if that needs no import, else ``_UNSET``."""
    real = _get(stand_in, "_real")
    if real is not _UNSET:
        return real
    path: str = _get(stand_in, "_path")
    if path in sys.modules:
        return _resolve(stand_in)
    parent, _, name = path.rpartition(".")
    if not parent:
        return _UNSET
    owner = _loaded(_get(stand_in, "_imports").stand_in(parent))
    if owner is _UNSET or not hasattr(owner, name):
        return _UNSET
    return _resolve(stand_in)


def _could_exist(stand_in: Deferred) -> bool:
    """Whether an instance of the class ``stand_in`` names can exist: the module defining it
    has been imported (else the class has not been created yet)."""
    return _loaded(stand_in) is not _UNSET


ImportFunction = Callable[..., Any]


class DeferredImports:
    """An ``__import__`` that defers the imports of ``modules`` made by ``importers``
    (each a package name and its submodules). :meth:`install` it, :meth:`uninstall` it."""

    def __init__(
        self, modules: Sequence[str], importers: Sequence[str], eager: Sequence[str] = ()
    ) -> None:
        self.modules = tuple(modules)
        self.importers = tuple(importers)
        self.eager = tuple(eager)
        self._installed: dict[str, bool] = {}  # top-level package -> can be imported
        self._stand_ins: dict[str, Deferred] = {}
        self._homes: dict[str, list[dict[str, Any]]] = {}  # package -> importers' globals
        self._lock = threading.RLock()
        self._original: ImportFunction | None = None
        self._rebinding = False

    def install(self) -> None:
        """Route ``import`` statements through this object (idempotent)."""
        if self._original is None:
            self._original = builtins.__import__
            builtins.__import__ = self._import

    def uninstall(self) -> None:
        """Restore the ``__import__`` that was there before (if nobody replaced ours)."""
        if self._original is not None and builtins.__import__ == self._import:
            builtins.__import__ = self._original
        self._original = None

    def stand_in(self, path: str) -> Deferred:
        """The one stand-in for ``path``, a child of the one for its parent path."""
        with self._lock:
            stand_in = self._stand_ins.get(path)
            if stand_in is None:
                stand_in = self._stand_ins[path] = Deferred(path, self)
                parent, _, name = path.rpartition(".")
                if parent:
                    _get(self.stand_in(parent), "_children")[name] = stand_in
            return stand_in

    def deferred(self) -> list[str]:
        """The stand-ins handed out and not yet resolved, by path."""
        return sorted(p for p, s in self._stand_ins.items() if _get(s, "_real") is _UNSET)

    def rebind(self, package: str) -> None:
        """Rebind, in the globals of the modules that imported from ``package``, each
        stand-in whose object is now loaded to that object."""
        if self._rebinding:
            return
        self._rebinding = True
        try:
            for namespace in list(self._homes.get(package, ())):
                for key, value in list(namespace.items()):
                    if isinstance(value, Deferred) and _within(_get(value, "_path"), package):
                        real = _loaded(value)
                        if real is not _UNSET:
                            namespace[key] = real
        finally:
            self._rebinding = False

    def target(self, name: str, importer: str, package: str, level: int) -> str | None:
        """The absolute name of the module that ``importer`` (in ``package``) imports as
        ``name`` at ``level`` if this deferral covers it, else ``None``. Pure: whether the
        module is already imported is for the caller to ask."""
        if level:
            bits = package.rsplit(".", level - 1)
            if len(bits) < level:
                return None
            name = f"{bits[0]}.{name}" if name else bits[0]
        if not any(_within(importer, p) for p in self.importers):
            return None
        if any(_within(name, p) for p in self.eager):
            return None
        for prefix in self.modules:
            if _within(name, prefix):
                return None if _within(importer, prefix) else name
        return None

    def _target(
        self, name: str, namespace: Mapping[str, Any], level: int, fromlist: Sequence[str]
    ) -> str | None:
        """The absolute name to defer now, or ``None`` to import now."""
        if any(item == "*" or _constant(item) for item in fromlist):
            return None  # ``*``, or a constant: used as a value, so it must be the value
        target = self.target(
            name,
            str(namespace.get("__name__", "")),
            str(namespace.get("__package__") or ""),
            level,
        )
        if target is None or target in sys.modules or not self._can_import(target):
            return None
        return target

    def _can_import(self, name: str) -> bool:
        """Whether the top-level package of ``name`` is installed: a missing one fails at
        the import statement, as it would without the deferral (``except ImportError``)."""
        root = name.partition(".")[0]
        known = self._installed.get(root)
        if known is None:
            known = self._installed[root] = importlib.util.find_spec(root) is not None
        return known

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> Any:
        original = self._original or builtins.__import__
        if (
            globals is None
            or not str(globals.get("__name__", "")).startswith(self.importers)
            or (not level and name in sys.modules)
        ):  # the common case, kept cheap: every import statement that runs comes here
            return original(name, globals, locals, fromlist, level)
        target = self._target(name, globals, level, fromlist or ())
        if target is None:
            return original(name, globals, locals, fromlist, level)
        package = target.partition(".")[0]
        with self._lock:
            homes = self._homes.setdefault(package, [])
            if isinstance(globals, dict) and not any(h is globals for h in homes):
                homes.append(globals)
        if fromlist:  # ``from a.b import c, d``: ``c`` and ``d`` are read from the stand-in
            for item in fromlist:
                self.stand_in(f"{target}.{item}")
            return self.stand_in(target)
        # ``import a.b.c`` binds ``a``; ``a.b.c`` is then attribute access on the stand-in.
        if package in sys.modules:  # ``a`` is there: ``a.b.c`` must be too
            return original(name, globals, locals, fromlist, level)
        self.stand_in(target)
        return self.stand_in(package)


_process_imports: DeferredImports | None = None


def defer_optional_imports() -> bool:
    """Defer py-libp2p's optional parts in this process (see the module docstring). Call it
    before py-libp2p is imported; it does nothing when it is already imported or when
    ``AXL_EAGER_IMPORTS`` is set to a non-empty value other than ``0``. Whether it is on."""
    global _process_imports
    if _process_imports is not None:
        return True
    if os.environ.get("AXL_EAGER_IMPORTS", "") not in ("", "0") or "libp2p" in sys.modules:
        return False
    _process_imports = DeferredImports(OPTIONAL_MODULES, IMPORTERS, EAGER_MODULES)
    _process_imports.install()
    return True


def process_deferred_imports() -> DeferredImports | None:
    """The deferral :func:`defer_optional_imports` installed in this process, if any."""
    return _process_imports
