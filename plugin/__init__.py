"""The loyalty app: create_app() builds the Flask application; nothing else lives here."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from plugin.config import MAX_WEBHOOK_BYTES, Settings


def create_app(settings: Settings | None = None, **flask_config: Any) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or None,
        MAX_CONTENT_LENGTH=MAX_WEBHOOK_BYTES,
        JSON_SORT_KEYS=False,
        **flask_config,
    )
    app.extensions["loyalty"] = settings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from plugin import cli, errors
    from webhooks.intake import bp as webhooks_bp

    errors.register(app)
    app.register_blueprint(webhooks_bp)
    app.cli.add_command(cli.loyalty)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
