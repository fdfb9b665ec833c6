"""The ceiling of the stack: a bare Flask "hello" app, served by gunicorn exactly as hcpform is.

gunicorn --workers 2 bench.bare_app:app
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"


@app.post("/hooks")
def hook() -> tuple[str, int]:
    """The bare counterpart of POST /hooks/hcp: read the body, answer 200."""
    from flask import request

    request.get_data()
    return "", 200
