"""The pages blueprint every page module registers its routes on (templates and /assets here)."""

from __future__ import annotations

from flask import Blueprint

blp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
