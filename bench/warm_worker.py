"""An experimental sync worker for `bench/sync.py --worker warm`: RQ's SimpleWorker, no fork.

`flask --app hcpform worker` (RQ's Worker) forks a fresh work-horse for every job. The horse
opens a new database connection and compiles again every SQL statement of the sync, because its
parent never ran them. This worker runs each job in its own long-lived process instead, inside a
fresh app context per job. Its pool, its SQLAlchemy statement cache and its imports stay warm.
It exists to measure what that would save. It is not the product's worker: it has no sweep and
no scheduler.

    python bench/warm_worker.py   # with the same environment as `flask --app hcpform worker`
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from rq import SimpleWorker

    from hcpform import create_app
    from hcpform.extensions import db, get_redis
    from hcpform.jobs import get_queue

    app = create_app()

    class AppContextWorker(SimpleWorker):
        """Run each job inside its own app context, as a fresh horse would."""

        def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
            with app.app_context():
                try:
                    return super().perform_job(job, queue, *args, **kwargs)
                finally:
                    db.session.remove()

    with app.app_context():
        worker = AppContextWorker([get_queue(app)], connection=get_redis(app))
    worker.work(logging_level="WARNING")


if __name__ == "__main__":
    main()
