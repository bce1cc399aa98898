"""The test-only clock: a file every process follows, refused outside tests and local
development."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from models import clock
from models.db import utcnow
from web.test_clock import ClockFileRefused, init_test_clock

SUMMER = datetime(2026, 7, 16, 4, 30, tzinfo=UTC)


@pytest.fixture
def clock_file(tmp_path):
    path = tmp_path / "clock"
    yield path
    clock.use_test_clock(None)


def test_the_clock_file_sets_the_time_and_it_runs_on(clock_file):
    clock.use_test_clock(clock_file)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)  # no file yet: real
    clock.set_test_clock(clock_file, SUMMER)
    first = clock.now()
    assert SUMMER <= first < SUMMER + timedelta(seconds=2)
    time.sleep(0.05)
    assert clock.now() > first  # it runs on from there
    stored = utcnow()  # the domain's clock, as the tables store it
    assert stored.tzinfo is None and SUMMER.replace(tzinfo=None) <= stored


def test_a_frozen_clock_stays_and_a_new_line_moves_it(clock_file):
    clock.use_test_clock(clock_file)
    clock.set_test_clock(clock_file, SUMMER, frozen=True)
    time.sleep(0.02)
    assert clock.now() == SUMMER
    winter = datetime(2026, 12, 10, 5, 30, tzinfo=UTC)
    clock.set_test_clock(clock_file, winter, frozen=True)
    assert clock.now() == winter
    clock.use_test_clock(None)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_clock_file_is_refused_in_production(clock_file):
    with pytest.raises(ClockFileRefused, match="TEST_CLOCK_FILE is a test-only setting"):
        init_test_clock({"TEST_CLOCK_FILE": str(clock_file), "APP_ENV": "production"})
    assert clock.now().year == datetime.now(UTC).year  # still the system clock
    for allowed in ({"APP_ENV": "test"}, {"APP_ENV": "local"}, {"TESTING": True}):
        init_test_clock({"TEST_CLOCK_FILE": str(clock_file), **allowed})
        clock.use_test_clock(None)


def test_a_production_app_with_a_clock_file_does_not_start(clock_file, monkeypatch):
    from web import create_app

    monkeypatch.setenv("TEST_CLOCK_FILE", str(clock_file))
    monkeypatch.delenv("APP_ENV", raising=False)
    with pytest.raises(SystemExit) as refused:
        create_app({"SECRET_KEY": "k" * 40 + "-not-in-the-repository-" + str(time.time())})
    assert "TEST_CLOCK_FILE" in str(refused.value)
