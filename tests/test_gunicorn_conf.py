"""gunicorn.conf.py: two threads per web worker by default (decision 0038), sync workers with WEB_THREADS=1; the
threaded worker class and the GIL switch interval of decision 0063."""

from __future__ import annotations

import runpy
import sys
import threading
from pathlib import Path

import pytest
from gunicorn.config import Config

from plugin import db
from plugin.web.balanced_accept import BalancedThreadWorker, JsonSyncWorker

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


@pytest.mark.parametrize(
    ("threads", "expected"),
    [(None, (2, "balanced")), ("4", (4, "balanced")), ("1", (1, "sync")), ("0", (1, "sync"))],
)
def test_worker_class_follows_web_threads(monkeypatch, threads, expected):
    if threads is None:
        monkeypatch.delenv("WEB_THREADS", raising=False)
    else:
        monkeypatch.setenv("WEB_THREADS", threads)
    conf = runpy.run_path(str(CONF))
    cfg = Config()
    cfg.set("threads", conf["threads"])
    cfg.set("worker_class", conf["worker_class"])
    loaded = {BalancedThreadWorker: "balanced", JsonSyncWorker: "sync"}.get(cfg.worker_class, cfg.worker_class_str)
    assert (conf["threads"], loaded) == expected


def test_web_switch_interval_sets_each_workers_gil_switch_interval_and_unset_leaves_it(monkeypatch):
    monkeypatch.setattr(db, "_ENGINES", {})  # post_fork forgets the engines' pools: not this process's own
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.004)
        monkeypatch.delenv("WEB_SWITCH_INTERVAL", raising=False)
        runpy.run_path(str(CONF))["post_fork"](None, None)
        assert sys.getswitchinterval() == pytest.approx(0.004)
        monkeypatch.setenv("WEB_SWITCH_INTERVAL", "0.0005")
        runpy.run_path(str(CONF))["post_fork"](None, None)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(before)


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
