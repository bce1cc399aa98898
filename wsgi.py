"""The web entry point: `python wsgi.py` serves HTTP and Socket.IO on $PORT.

When served, eventlet's monkey patching comes first, before anything imports socket or
threading. Operator commands (`flask --app wsgi ...`) import this module after Flask's
CLI is loaded, too late to patch, so they run unpatched.
"""

import eventlet

if __name__ == "__main__":
    eventlet.monkey_patch()

    # psycopg2 is a C driver: without this a PostgreSQL query blocks every connection.
    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()

import os  # noqa: E402

from web import create_app  # noqa: E402
from web.extensions import socketio  # noqa: E402
from workers import celery_init_app  # noqa: E402

app = create_app()
celery_init_app(app)

if __name__ == "__main__":
    import logging

    from models.logcontext import configure_logging
    from web.observability import log_tenant_isolation
    from workers.publish import publish_in_background

    configure_logging(app.config["LOG_FORMAT"], "web")
    log_tenant_isolation(app)
    publish_in_background(app)
    socketio.run(
        app,
        host=os.environ.get("HOST", "0.0.0.0"),
        port=app.config["PORT"],
        log_output=True,
        # The access log goes through logging too (JSON lines with LOG_FORMAT=json).
        log=logging.getLogger("web.access"),
    )
