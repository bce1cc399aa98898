"""The PSA connectors: one module per PSA, each with a `SPEC` (a `ConnectorSpec`: its
fields, capabilities and HTTP client). A new PSA is one new module here, found by
`discover`; nothing else names the PSAs."""

from __future__ import annotations

import importlib
import pkgutil

from models.psa.base import Connectors, ConnectorSpec

# The order the /settings form lists them in; modules not named here follow by name.
ORDER = ("connectwise", "autotask")


def discover() -> list[ConnectorSpec]:
    """Every module of this package that declares a `SPEC`."""
    specs = []
    for module in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SPEC", None)
        if isinstance(spec, ConnectorSpec):
            specs.append(spec)
    rank = {kind: index for index, kind in enumerate(ORDER)}
    return sorted(specs, key=lambda spec: (rank.get(spec.kind, len(ORDER)), spec.kind))


#: The PSA kinds and their HTTP clients; the edges pass it to `PsaSettings.from_config`.
default_connector = Connectors(discover())
