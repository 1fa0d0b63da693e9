"""bench/drain.py: each run drains in a database of its own, dropped at the end even when the run fails."""

from __future__ import annotations

import os

import pytest

from bench import drain


class Stop(Exception):
    """Ends a section before it reaches PostgreSQL: these tests look only at which database it names."""


def test_each_run_names_a_database_of_its_own():
    assert f"loyalty_bench_drain_{os.getpid()}" == drain.DATABASE


@pytest.mark.parametrize("section", ["cpu", "workers"])
def test_both_sections_drain_in_the_runs_database(monkeypatch, section):
    named = []

    def prepared_database(name):
        named.append(name)
        raise Stop

    monkeypatch.setattr(drain, "prepared_database", prepared_database)
    with pytest.raises(Stop):
        if section == "cpu":
            drain.cpu_per_order(set_based=True, orders=2)
        else:
            drain.workers_throughput(1, 50, set_based=True, orders=2)
    assert named == [drain.DATABASE]


def test_a_run_drops_its_database_at_the_end(monkeypatch):
    dropped = []
    monkeypatch.setattr(drain, "cpu_per_order", lambda set_based, orders, member_rules=False: (1.0, 2.0))
    monkeypatch.setattr(drain, "workers_throughput", lambda workers, batch, set_based, orders: 10)
    monkeypatch.setattr(drain, "drop_database", dropped.append)
    assert drain.run(orders=4)["orders"] == 4
    assert dropped == [drain.DATABASE]


def test_a_failed_run_drops_it_too(monkeypatch):
    dropped = []

    def fail(*_args, **_kwargs):
        raise RuntimeError("the drain did not finish in 600 s")

    monkeypatch.setattr(drain, "cpu_per_order", lambda set_based, orders, member_rules=False: (1.0, 2.0))
    monkeypatch.setattr(drain, "workers_throughput", fail)
    monkeypatch.setattr(drain, "drop_database", dropped.append)
    with pytest.raises(RuntimeError):
        drain.run(orders=4)
    assert dropped == [drain.DATABASE]
