"""Lazy loading of plug-ins by name: built-ins, Python entry points, or `module:Object`.

Verifiers, tasks and sandbox backends are plug-ins. A name resolves, in order, to a built-in of
rlvr, then to an entry point of the group (`rlvr.verifiers`, `rlvr.tasks`, `rlvr.sandboxes`)
that another package declares, then to a `package.module:Object` path. Nothing is imported until
it is asked for, and an unknown name is an error that lists the valid choices.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Mapping

from rlvr.errors import PluginError


def _import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise PluginError(f"{path!r} is not of the form 'package.module:Object'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginError(f"{module_name!r} has no attribute {attr!r}") from exc
    return obj


def available(group: str, builtins: Mapping[str, str]) -> list[str]:
    """Every name that `load` would accept, built-ins first."""
    names = list(builtins)
    names += sorted(ep.name for ep in entry_points(group=group) if ep.name not in builtins)
    return names


def load(group: str, name: str, builtins: Mapping[str, str]) -> Any:
    """The object (usually a class or factory) registered as `name` in `group`."""
    if name in builtins:
        return _import_object(builtins[name])
    for ep in entry_points(group=group):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as exc:  # a third-party plug-in may fail in any way on import
                raise PluginError(f"plug-in {name!r} of {group} failed to load: {exc}") from exc
    if ":" in name:
        return _import_object(name)
    choices = ", ".join(available(group, builtins))
    raise PluginError(f"unknown {group.split('.')[-1][:-1]} {name!r}; choose one of: {choices}, "
                      "or give 'package.module:Object'")


def construct(factory: Any, what: str, *args: Any, **options: Any) -> Any:
    """`factory(*args, **options)`, with options the factory does not take reported as a
    `ConfigError` that lists the ones it does. A `TypeError` raised inside the factory is not
    relabelled: it is a bug of the plug-in and propagates as it is."""
    from rlvr.errors import ConfigError

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C type without a signature: just call it
        return factory(*args, **options)
    try:
        signature.bind(*args, **options)
    except TypeError as exc:
        accepted = [p.name for p in signature.parameters.values()
                    if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][len(args):]
        raise ConfigError(f"{what} rejected its options {options}: {exc}; it accepts: "
                          f"{', '.join(accepted) or 'no options'}") from exc
    return factory(*args, **options)
