"""Python runs this at start-up in every process of the stack of
tests/e2e/test_queue_follows_the_server.py (this directory is on that stack's PYTHONPATH).

When `models.entities` and `models.permissions` are first imported it changes one priority
label and the claim rule (admins may not claim), so the test can see the queue page show
what the server says rather than what its script could work out. Nothing of the program is
imported here: wsgi.py's eventlet monkey patching still comes before any import of it.
"""

from __future__ import annotations

import importlib.abc
import sys
from types import ModuleType

RELABELLED = {"p2": "P2 · said by the server"}
CLAIMING_ROLES = ("engineer",)
CHANGED = ("models.entities", "models.permissions")


def _change(module: ModuleType) -> None:
    if module.__name__ == "models.entities":
        module.PRIORITY_LABELS.update(RELABELLED)
    elif module.__name__ == "models.permissions":
        module.may_claim = lambda user: user.role in CLAIMING_ROLES


class _ThenChange(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _change(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in CHANGED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _ThenChange(spec.loader)
                return spec
        return None


sys.meta_path.insert(0, _Finder())
