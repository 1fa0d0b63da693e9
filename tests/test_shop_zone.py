"""A shop's time zone: where its periods, birthdays and expiry days are counted."""

from __future__ import annotations

from plugin.db import transaction
from plugin.models import Shop
from plugin.services import shops


def test_a_shop_counts_days_in_its_own_time_zone(settings, shop):
    with transaction(settings.database_url) as session:
        row = session.get(Shop, shop)
        assert str(shops.zone(row)) == "UTC"
        row.time_zone = "Europe/Paris"
        assert str(shops.zone(row)) == "Europe/Paris"
        row.time_zone = "Mars/Olympus_Mons"
        assert str(shops.zone(row)) == "UTC"
