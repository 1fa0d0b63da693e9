"""Tier multiplier: a member's tier multiplies the base award, as a contribution of its own (kind "tier").

Not a rule the merchant writes in the rule set: the tier programme (plugin/programme/tiers.py) configures it,
and its version names the contribution, so a refund reverses it from the lot like any other.
"""

from __future__ import annotations

from plugin.programme import explanations
from plugin.programme.rules.core import Evaluation
from plugin.programme.rules.matching import Match

EVERY_LINE = Match()
KIND = "tier"


def apply(evaluation: Evaluation) -> None:
    tier = evaluation.member.tier
    if tier is None or tier.multiplier == 1:
        return
    label = explanations.detail("tier_multiplier", name=tier.name)
    evaluation.multiply(f"tier:{tier.tier_id}", tier.version, KIND, tier.multiplier, EVERY_LINE, label)
