"""The benchmarks' web process: the real app plus the benchmark-only routes of
bench/endpoints.py, served exactly as `python wsgi.py` serves the real one.

    python -m bench.web        (bench/common.py starts it; never deployed)
"""

import eventlet

if __name__ == "__main__":
    eventlet.monkey_patch()

    from psycogreen.eventlet import patch_psycopg

    patch_psycopg()

import os  # noqa: E402

from bench.endpoints import register  # noqa: E402
from web import create_app  # noqa: E402
from web.extensions import socketio  # noqa: E402
from workers import celery_init_app  # noqa: E402


def main() -> None:
    from workers.publish import publish_in_background

    app = create_app()
    celery_init_app(app)
    register(app)
    publish_in_background(app)
    socketio.run(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=app.config["PORT"], log_output=True
    )


if __name__ == "__main__":
    main()
