"""gunicorn.conf.py: two threads per web worker by default (decision 0038), sync workers with WEB_THREADS=1."""

from __future__ import annotations

import runpy
import threading
from pathlib import Path

import pytest

from plugin import db

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


@pytest.mark.parametrize(
    ("threads", "expected"),
    [(None, (2, "gthread")), ("4", (4, "gthread")), ("1", (1, "sync")), ("0", (1, "sync"))],
)
def test_worker_class_follows_web_threads(monkeypatch, threads, expected):
    if threads is None:
        monkeypatch.delenv("WEB_THREADS", raising=False)
    else:
        monkeypatch.setenv("WEB_THREADS", threads)
    conf = runpy.run_path(str(CONF))
    assert (conf["threads"], conf["worker_class"]) == expected


def test_threads_racing_for_a_new_engine_all_get_the_same_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    start = threading.Barrier(8)
    found = []

    def get() -> None:
        start.wait()
        found.append(db.engine_for(url))

    workers = [threading.Thread(target=get) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    try:
        assert len(found) == 8
        assert len({id(engine) for engine in found}) == 1
        assert db._ENGINES[url] is found[0]
    finally:
        db._ENGINES.pop(url).dispose()
