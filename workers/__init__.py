"""The Celery edge: tasks take ids, load, call the domain, and send or emit."""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    """Bind a Celery app to the Flask app (every task runs inside the app context) and
    publish the app's committed outbox events (workers.publish)."""
    from workers import publish, settings, tenancy

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return tenancy.run_task(self, args, kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(settings.settings(app.config))
    from workers.observability import connect_publish_side

    connect_publish_side(app.config.get("PROCESS_TYPE") or "web")
    celery.set_default()
    app.extensions["celery"] = celery
    publish.install(app)
    return celery
