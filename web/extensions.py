"""Extensions, created empty and bound to an app in `create_app`."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

from models.db import db

migrate = Migrate()
socketio = SocketIO()
# CSRF for the login cookie (the policy is in web.pages.security); no blanket default limits,
# only the routes that declare one (sign-in) are rate limited.
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)

__all__ = ["csrf", "db", "limiter", "migrate", "socketio"]
