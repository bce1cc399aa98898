"""Look-ups made before the tenant is known (email domain → account, callback state →
sign-in, "does this email exist in any account"), and switching to that account after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

try:  # row-level security's tenant context, where the database enforces it
    from models import tenancy as _tenancy
except ImportError:  # pragma: no cover - an install without it scopes in the application
    _tenancy = None


@contextmanager
def system(purpose: str) -> Iterator[None]:
    """A look-up across accounts, named by its purpose."""
    if _tenancy is None:
        yield
        return
    with _tenancy.system(purpose):
        yield


def act_for(account_id: int) -> None:
    """From here on, this unit of work acts for `account_id`."""
    if _tenancy is not None:
        _tenancy.set_tenant(account_id)
