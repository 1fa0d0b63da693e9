"""A LoyaltyWorker's work horse freezes what it inherits for the cyclic collector; the worker itself does not."""

from __future__ import annotations

import gc

from plugin.jobs import dispatch
from plugin.worker import LoyaltyWorker


def test_a_work_horse_runs_its_job_with_what_it_inherited_frozen_and_the_worker_keeps_collecting(worker_environment):
    queued = worker_environment
    connection = dispatch.redis_client(queued.redis_url)
    job = dispatch.queue_for(queued).enqueue("gc.get_freeze_count")  # run in the horse: what it holds frozen
    worker = LoyaltyWorker([queued.queue_name], connection=connection, name=f"{queued.queue_name}-worker")
    frozen_here = gc.get_freeze_count()
    assert worker.work(burst=True)
    job.refresh()
    assert job.get_status() == "finished"
    # Everything the forking process held (here the test run's; about 132,000 objects in a started `rq worker`),
    # none of it walked again by the horse's full collections.
    assert job.return_value() > 10_000
    assert gc.get_freeze_count() == frozen_here  # the worker froze nothing of its own
