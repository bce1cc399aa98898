"""Task and queue names, defined once (celery_config routes by them)."""

DISPATCH_OUTBOX_EVENT = "workers.fanout.dispatch_outbox_event"
DISPATCH_OUTBOX_EVENTS = "workers.fanout.dispatch_outbox_events"
SEND_EMAIL = "workers.email.send_email"
RELAY_OUTBOX = "workers.outbox_relay.relay_outbox"
SWEEP_DELIVERIES = "workers.email.sweep_deliveries"
ROLLUP_METRICS = "workers.rollup.rollup_metrics"
RUN_HANDOFF_STEPS = "workers.handoff_steps.run_handoff_steps"

QUEUE_REALTIME = "realtime"
QUEUE_EMAIL = "email"
QUEUE_MAINTENANCE = "maintenance"
