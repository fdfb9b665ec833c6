"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from hcpform import create_app

app = create_app()
