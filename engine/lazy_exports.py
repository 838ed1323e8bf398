"""Names of a package imported on first use (PEP 562 module ``__getattr__`` / ``__dir__``).

``engine.backbones``, ``engine.scorers`` and ``engine.pretrain`` use it so that reading their
torch-free parts (registries, settings) does not import torch: ``main.py COMMAND -h`` stays fast
(``tests/test_startup_imports.py``)::

    _WHERE = {"Backbone": "backbone", "BACKBONES": "registry"}   # name -> sub-module
    __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

See also: PEP 562, "Module __getattr__ and __dir__".
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Iterable


def lazy_exports(package: str, where: dict[str, str], extra: Iterable[str] = ()
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of ``package`` for the names in ``where``.

    Args:
        package: the package's ``__name__``.
        where: exported name -> sub-module (relative to ``package``) that defines it.
        extra: further names ``__dir__`` lists (served by the package's own ``__getattr__``).

    The first access imports the sub-module and caches the value in the package's globals, so later
    accesses are plain attribute reads. An unknown name raises ``AttributeError``, as for any module.
    """

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{where[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where) | set(extra))

    return __getattr__, __dir__
