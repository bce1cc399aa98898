"""Extensions, created empty and bound to an app in `create_app`."""

from flask_migrate import Migrate
from flask_socketio import SocketIO

from models.db import db

migrate = Migrate()
socketio = SocketIO()

__all__ = ["db", "migrate", "socketio"]
