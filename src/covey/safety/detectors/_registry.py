"""Find detectors: every concrete `Detector` subclass in a module of this package.

A new detector is a new file; nothing else is edited. The registry is computed, not a
mutable global that modules write into at import time.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from covey.errors import InvalidInput
from covey.safety.detectors._base import Detector


@functools.cache
def available_detectors() -> Mapping[str, type[Detector]]:
    """Detector classes by name, from every public module of `covey.safety.detectors`."""
    package = importlib.import_module("covey.safety.detectors")
    found: dict[str, type[Detector]] = {}
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, Detector) and cls.__module__ == module.__name__
                    and not inspect.isabstract(cls)):
                if cls.name in found:
                    raise RuntimeError(f"two detectors are named {cls.name!r}")
                found[cls.name] = cls
    return MappingProxyType(found)


def build_detectors(options: Mapping[str, Mapping[str, Any]]) -> list[Detector]:
    """Instantiate the detectors the operator enabled: `{name: options}`."""
    registry = available_detectors()
    unknown = sorted(set(options) - set(registry))
    if unknown:
        raise InvalidInput(f"unknown detectors {unknown}; available: {sorted(registry)}",
                           code="detector_unknown")
    return [registry[name].from_options(opts) for name, opts in sorted(options.items())]
