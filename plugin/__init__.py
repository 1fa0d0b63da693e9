"""The loyalty app: create_app() builds the Flask application; nothing else lives here."""

from __future__ import annotations

from typing import Any

from flask import Flask

from plugin import generations, logs
from plugin.config import MAX_WEBHOOK_BYTES, Settings


def create_app(settings: Settings | None = None, **flask_config: Any) -> Flask:
    settings = settings or Settings.from_env()
    # The process start of web (gunicorn's create_app()) and CLI (flask --app plugin) processes: their commits bump
    # the widget's generations in settings' Redis. The worker watches in plugin/worker.py.
    generations.watch(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or None,
        # One byte over our limit, so a chunked body (no Content-Length) that is too big can be seen as such:
        # Werkzeug stops a streamed body at this length without an error (webhooks/intake.py checks it).
        MAX_CONTENT_LENGTH=MAX_WEBHOOK_BYTES + 1,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_SECURE=not settings.demo,  # the OAuth state cookie travels over https only
        SESSION_COOKIE_SAMESITE="Lax",
        **flask_config,
    )
    app.extensions["loyalty"] = settings
    logs.configure()

    from plugin.cli import loyalty
    from plugin.web import actions_api, admin, errors, install, json_bodies
    from storefront_widget.milestones import bp as storefront_milestones_bp
    from storefront_widget.proxy import bp as storefront_bp
    from storefront_widget.referrals import bp as storefront_referrals_bp
    from storefront_widget.widget_hits import WidgetHits
    from webhooks.intake import bp as webhooks_bp
    from webhooks.intake_acks import IntakeAcks

    app.json = json_bodies.BoundedJSONProvider(app)  # request bodies too deep or with a lone surrogate: a 400
    admin.init_app(app)  # the admin API and page, and the support API (each with its OpenAPI document)
    errors.register(app)  # after flask-smorest, whose own HTTP error handler this one replaces
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(install.bp)
    app.register_blueprint(actions_api.bp)
    app.register_blueprint(storefront_bp)
    app.register_blueprint(storefront_milestones_bp)
    app.register_blueprint(storefront_referrals_bp)
    if settings.demo:
        from storefront_widget.demo import bp as demo_bp

        app.register_blueprint(demo_bp)
    app.cli.add_command(loyalty)
    # A current cached widget read (decision 0053) and a correctly signed webhook delivery (decision 0057) are
    # answered before Flask's request handling, which would run none of ours around them; everything else passes
    # through to Flask.
    app.wsgi_app = WidgetHits(app, IntakeAcks(app, app.wsgi_app))  # type: ignore[method-assign]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
