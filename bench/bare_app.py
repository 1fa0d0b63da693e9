"""The baseline: bare Flask endpoints with no signature, database or queue, served like the app by gunicorn."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, jsonify, request

# The widget baseline answers the same bytes the real endpoint answered for one member, so both send as much.
WIDGET_BODY = Path(os.environ["BENCH_WIDGET_BODY"]).read_bytes() if os.environ.get("BENCH_WIDGET_BODY") else b"{}"

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> Response:
    return jsonify({"ok": True})


@app.post("/webhooks/shopify")
def webhook() -> Response:
    request.get_data(cache=False)
    return jsonify({"status": "accepted", "delivery_id": 1})


@app.get("/proxy/widget")
def widget() -> Response:
    return Response(WIDGET_BODY, mimetype="application/json")
