"""The WSGI entry point for gunicorn: `gunicorn 'impasto.api.wsgi:app'` (settings from IMPASTO_*)."""

from impasto.api import create_app

app = create_app()
