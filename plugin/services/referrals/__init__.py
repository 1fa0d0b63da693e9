"""Referrals: personal links, the friend's code, outcomes recomputed from facts, fraud guards and figures."""

from plugin.services.referrals import stats
from plugin.services.referrals.outcomes import after_order_change, approve, due_shops, recompute, settle_due
from plugin.services.referrals.setup import current, link_code, settings_row, update_settings
from plugin.services.referrals.stats import by_advocate, describe, for_shop, listed, to_csv
from plugin.services.referrals.visits import find_visit, issue, open_link, unsettled

__all__ = [
    "after_order_change",
    "approve",
    "by_advocate",
    "current",
    "describe",
    "due_shops",
    "find_visit",
    "for_shop",
    "issue",
    "link_code",
    "listed",
    "open_link",
    "recompute",
    "settings_row",
    "settle_due",
    "stats",
    "to_csv",
    "unsettled",
    "update_settings",
]
