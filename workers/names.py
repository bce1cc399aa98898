"""Task and queue names, defined once (workers/settings.py routes by them)."""

from models.psa.inbound import SYNC_TICKET_TASK

# Kept stable on purpose: queued messages carry these names (email tasks: workers/mail.py).
DISPATCH_OUTBOX_EVENT = "workers.fanout.dispatch_outbox_event"
DISPATCH_OUTBOX_EVENTS = "workers.fanout.dispatch_outbox_events"
SEND_EMAIL = "workers.email.send_email"
SEND_EMAILS = "workers.email.send_emails"
RELAY_OUTBOX = "workers.outbox_relay.relay_outbox"
SWEEP_DELIVERIES = "workers.email.sweep_deliveries"
ROLLUP_METRICS = "workers.rollup.rollup_metrics"
RUN_HANDOFF_STEPS = "workers.handoff_steps.run_handoff_steps"
SHIFT_NOTICES = "workers.shift_notices.send_shift_notices"

QUEUE_REALTIME = "realtime"
QUEUE_EMAIL = "email"
QUEUE_MAINTENANCE = "maintenance"

# The PSA (workers/psa.py) has its own queue: a slow PSA never holds the live path or email.
PSA_POST_NOTE = "workers.psa.post_note"
PSA_SYNC_TICKET = SYNC_TICKET_TASK  # the web edge asks for it on a callback
PSA_POLL = "workers.psa.poll"
QUEUE_PSA = "psa"
