"""A push run's shop lock (member_marks.push_each) held by another connection, as another run holds it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from plugin.services import member_marks


@contextmanager
def held_elsewhere(engine, namespace: str, shop_id: int) -> Iterator[None]:
    """The shop's run lock in `namespace` held by another connection for the block (PostgreSQL); fails if another
    holder had it already, so a run that forgot to release it is caught here too."""
    params = {"namespace": namespace, "shop": str(shop_id)}
    with engine.connect() as other:
        assert other.exec_driver_sql(member_marks.TRY_RUN_LOCK, params).scalar_one(), "the run lock was not free"
        other.commit()
        try:
            yield
        finally:
            other.exec_driver_sql(member_marks.RUN_UNLOCK, params)
            other.commit()
