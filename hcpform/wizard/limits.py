"""The wizard's rate limits as responses: count a request, and answer 429 once a limit is used up.

The counting is `hcpform/ratelimits.py`'s; this module only turns a refusal into the wizard's
friendly 429 page (embed-aware, with the business's phone and when to try again).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from flask.typing import ResponseReturnValue

from ..errors import render_error
from ..i18n import N_
from ..ratelimits import client_ip, enabled, hit, ip_limits, submit_limits

SUBMIT_REFUSED = N_(
    "We've had a lot of requests from here. Your answers are saved: "
    "please wait a little, then send your request again, or call us."
)
PAGE_REFUSED = N_(
    "We've had a lot of requests from here. Please wait a little and try again, or call us."
)


def too_many(retry_after: float, message: str = SUBMIT_REFUSED) -> ResponseReturnValue:
    """Return the 429 page: plain words, the business's phone, and when to try again."""
    html, status = render_error(429, message)
    return html, status, {"Retry-After": str(math.ceil(retry_after)), "Cache-Control": "no-store"}


def refuse_over(name: str, config_key: str) -> ResponseReturnValue | None:
    """Count one request of this kind from the client; return the 429 page once it is over."""
    if not enabled():
        return None
    wait = hit(ip_limits(name, config_key, client_ip()))
    return None if wait is None else too_many(wait, PAGE_REFUSED)


def limit_submissions(
    submit: Callable[..., ResponseReturnValue],
) -> Callable[..., ResponseReturnValue]:
    """Decorate the wizard's submit (form, draft, …): refuse it with a 429 once a limit is used up.

    Nothing is written when refused: no submission row, and the draft stays as it was, so the
    person can send it later with one click.
    """

    @functools.wraps(submit)
    def wrapper(form: Any, draft: Any, *args: Any, **kwargs: Any) -> ResponseReturnValue:
        if enabled() and not draft.submitted_at:
            wait = hit(submit_limits(form, client_ip()))
            if wait is not None:
                return too_many(wait)
        return submit(form, draft, *args, **kwargs)

    return wrapper
