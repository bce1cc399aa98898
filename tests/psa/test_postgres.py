"""The same PSA guarantees on PostgreSQL: a note whose answer was lost is not posted
again, the claimer's note (or time entry) in the PSA is the first action at its own time,
a signed callback is accepted and an unsigned one refused, and release registers old
callbacks again across accounts."""

from __future__ import annotations

import pytest

from tests.factories import postgres_url, running_app
from tests.integration.services import temporary_postgres_database
from tests.psa import test_autotask as autotask
from tests.psa import test_callback_signatures as signed
from tests.psa import test_callback_url as callback_urls
from tests.psa import test_connectwise_answers as answers
from tests.psa import test_notes_in_the_psa as notes
from tests.psa import test_writeback as writeback
from tests.psa.factories import psa_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def app():
    with temporary_postgres_database(postgres_url(), prefix="psa") as url:
        with running_app(psa_config(url)) as app:
            yield app


def test_a_note_created_but_its_answer_lost_is_not_posted_again(client, tenant, fake_cw):
    writeback.test_a_note_created_but_its_answer_lost_is_not_posted_again(client, tenant, fake_cw)


def test_only_the_claimers_note_after_the_claim_counts(client, tenant, fake_cw, app):
    notes.test_only_the_claimers_note_after_the_claim_counts(client, tenant, fake_cw, app)


def test_a_note_read_late_still_wins_over_a_later_chat_message(client, tenant, fake_cw, app):
    notes.test_a_note_read_late_still_wins_over_a_later_chat_message(client, tenant, fake_cw, app)


def test_a_time_entry_note_counts_at_its_date_entered(client, tenant, fake_cw, app):
    answers.test_a_time_entry_note_counts_at_its_date_entered(client, tenant, fake_cw, app)


def test_a_signed_callback_is_accepted_and_its_key_fetched_once(client, tenant, fake_cw, queued):
    signed.test_a_signed_callback_is_accepted_and_its_key_fetched_once(
        client, tenant, fake_cw, queued
    )


def test_an_unsigned_callback_is_401_and_reads_nothing(client, tenant, fake_cw, queued):
    signed.test_an_unsigned_callback_is_401_and_reads_nothing(client, tenant, fake_cw, queued)


def test_release_registers_callbacks_of_the_old_form_again_once(client, tenant, fake_cw, app):
    callback_urls.test_release_registers_callbacks_of_the_old_form_again_once(
        client, tenant, fake_cw, app
    )


def test_403_on_members_is_said_in_the_status(client, tenant, fake_cw, app):
    answers.test_403_on_members_is_said_in_the_status_and_the_test_not_silently_nothing(
        client, tenant, fake_cw, app
    )


def test_autotask_a_note_whose_answer_was_lost_is_found_not_posted_again(client, tenant, fake_at):
    autotask.test_a_note_created_but_its_answer_lost_is_found_not_posted_again(
        client, tenant, fake_at
    )


def test_autotask_polling_finds_the_claimers_note(client, tenant, fake_at, app):
    autotask.test_polling_finds_the_claiming_seniors_note_as_the_first_action(
        client, tenant, fake_at, app
    )
