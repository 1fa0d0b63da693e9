"""The one place rule types are registered: a rule type is a module with a schema and a class, plus one line here.

`RULE_TYPES` maps the `type` a merchant writes in the rule set JSON to the class that implements it. Each
class has `Schema` (marshmallow, per-field messages) and `from_json(data, version)`.
"""

from __future__ import annotations

from plugin.programme.rules import (
    base_rate,
    campaign,
    customer_segment,
    exclusion,
    fixed_points,
    multiplier,
    points_cap,
)

RULE_TYPES = {
    "base_rate": base_rate.BaseRate,
    "customer_segment": customer_segment.CustomerSegment,
    "exclusion": exclusion.Exclusion,
    "multiplier": multiplier.Multiplier,
    "fixed_points": fixed_points.FixedPoints,
    "campaign": campaign.Campaign,
    "points_cap": points_cap.PointsCap,
}
