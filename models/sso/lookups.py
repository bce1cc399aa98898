"""Look-ups made before the tenant is known (email domain → account, callback state →
sign-in, "does this email exist in any account"), and switching to that account after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from models import tenancy


@contextmanager
def system(purpose: str) -> Iterator[None]:
    """A look-up across accounts, named by its purpose."""
    with tenancy.system(purpose):
        yield


def act_for(account_id: int) -> None:
    """From here on, this unit of work acts for `account_id`."""
    tenancy.set_tenant(account_id)
