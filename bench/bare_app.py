"""The floor for webhook acknowledgement: a bare Flask endpoint that answers 202.

No signature check, no dedupe, no storage: only what Flask and gunicorn cost.
It reads the body, as any webhook endpoint must.

    gunicorn --pythonpath bench 'bare_app:create_app()'
"""

from __future__ import annotations

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhook")
    def webhook():
        request.get_data()
        return "", 202

    @app.get("/healthz")
    def healthz():
        return "ok", 200

    return app


app = create_app()
