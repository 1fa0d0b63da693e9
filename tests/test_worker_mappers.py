"""A LoyaltyWorker configures SQLAlchemy's mappers at its start, so the work horses it forks inherit them configured."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, TEST_REDIS_URL

# A fresh interpreter, as `rq worker` starts one: its imports leave the mappers unconfigured (SQLAlchemy configures
# them at their first use), and each work horse forked from it would configure them again for its one job.
STARTED_WORKER = f"""
import json
from redis import Redis
from sqlalchemy import inspect
from plugin.models import Delivery, Member
from plugin.worker import LoyaltyWorker
before = inspect(Member).configured
LoyaltyWorker(["loyalty-mappers-test"], connection=Redis.from_url({TEST_REDIS_URL!r}))
print(json.dumps([before, inspect(Member).configured, inspect(Delivery).configured]))
"""


def test_a_started_worker_has_its_mappers_configured_before_it_forks_a_horse():
    result = subprocess.run(
        [sys.executable, "-c", STARTED_WORKER], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    before, member, delivery = json.loads(result.stdout.strip().splitlines()[-1])
    assert before is False  # the imports alone leave them to the first job: what this start-up work is for
    assert (member, delivery) == (True, True)
