"""Which account each task works for (models/tenancy.py has the why).

Beat's sweeps are system work: they cross accounts. Every other task works for one account
and carries it in its arguments (the keyword `account_id`, which each such task declares
and leaves to this module); a message queued before tasks carried it is
resolved through the system role from the row its first argument names. A batch of outbox
events (`dispatch_outbox_events`) names each event's account (`account_ids`) and switches
per event itself.
"""

from __future__ import annotations

import contextvars
from typing import Any

from models import tenancy
from models.entities import Delivery, OutboxEvent
from workers import names

ACCOUNT_ID = "account_id"

SYSTEM_TASKS: dict[str, str] = {
    names.RELAY_OUTBOX: "outbox_relay",
    names.SWEEP_DELIVERIES: "delivery_sweep",
    names.ROLLUP_METRICS: "rollup",
    names.PSA_POLL: "psa_poll",
    names.RUN_HANDOFF_STEPS: "handoff_steps",
    names.SHIFT_NOTICES: "shift_notices",
}
# Tasks of one account, sent with `account_id=`; the table their first argument's id (or
# first id, for a list) belongs to, for messages sent without it.
TENANT_TASKS: dict[str, Any] = {
    names.DISPATCH_OUTBOX_EVENT: OutboxEvent,
    names.SEND_EMAIL: Delivery,
    names.SEND_EMAILS: Delivery,
    names.PSA_POST_NOTE: Delivery,
}
# Tasks whose first positional argument is the account itself.
ACCOUNT_FIRST = frozenset({names.PSA_SYNC_TICKET})
# Tasks that set the account per item themselves.
PER_ITEM = frozenset({names.DISPATCH_OUTBOX_EVENTS})


def _first_id(args: tuple) -> int | None:
    first = args[0] if args else None
    if isinstance(first, list | tuple):
        first = first[0] if first else None
    return int(first) if isinstance(first, int | str) and str(first).isdigit() else None


def account_for(name: str, args: tuple, kwargs: dict[str, Any]) -> int | None:
    """The account a task message works for."""
    account_id = kwargs.get(ACCOUNT_ID) if name in TENANT_TASKS else None
    if account_id is not None:
        return int(account_id)
    if name in ACCOUNT_FIRST:
        return _first_id(args)
    model = TENANT_TASKS.get(name)
    row_id = _first_id(args) if model is not None else None
    return tenancy.account_of(model, row_id) if row_id is not None else None


def run_task(task: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run a task as its account's work, or as the system work it is, in a context of its
    own: it starts with no tenant, and whatever it sets ends with it."""
    return contextvars.copy_context().run(_run, task, args, kwargs)


def _run(task: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    tenancy.clear()
    purpose = SYSTEM_TASKS.get(task.name)
    if purpose is not None:
        with tenancy.system(purpose):
            return task.run(*args, **kwargs)
    if task.name in PER_ITEM:
        return task.run(*args, **kwargs)
    with tenancy.use_tenant(account_for(task.name, args, kwargs)):
        return task.run(*args, **kwargs)
