"""The WSGI entry point for gunicorn: `gunicorn 'api.wsgi:app'` (settings from IMPASTO_*)."""

from api import create_app

app = create_app()
