"""Recording work already done outside the database waits out a short database outage."""

from __future__ import annotations

import pytest
from sqlalchemy import exc

from models.db import database_unreachable, record_despite_outage


def _outage() -> exc.OperationalError:
    return exc.OperationalError("UPDATE deliveries", {}, Exception("server closed the connection"))


def test_the_write_is_tried_again_until_the_database_answers(app) -> None:
    calls = []

    def mark_sent() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _outage()
        return "recorded"

    assert record_despite_outage(mark_sent, patience_seconds=5) == "recorded"
    assert len(calls) == 3


def test_it_gives_up_after_its_patience_and_says_why(app) -> None:
    def never() -> None:
        raise _outage()

    with pytest.raises(exc.OperationalError):
        record_despite_outage(never, patience_seconds=0.5)


def test_other_errors_are_not_retried(app) -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(exc.IntegrityError):
        record_despite_outage(broken, patience_seconds=5)
    assert calls == [1]
    assert not database_unreachable(exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert database_unreachable(exc.PendingRollbackError("invalid transaction"))
