"""Names of a package that are imported from its submodules on first use (PEP 562).

A package's `__init__` that imports every submodule makes each command pay for all of
them: the backup commands loaded httpx and psutil that way. `lazy_exports` returns a
module `__getattr__` and `__dir__` that import a name's submodule only when the name
is first read, then keep the value in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], module_of: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return `__getattr__` and `__dir__` for `package`, whose globals are `namespace`.

    Args:
        module_of: The submodule, relative to `package`, that defines each lazy name.
    """

    def __getattr__(name: str) -> object:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
