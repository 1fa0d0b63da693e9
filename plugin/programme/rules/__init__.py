"""Earning rules as small strategies: order facts, member context and settings in, contributions out.

Each rule type is one module here with a schema and a class; `registry.RULE_TYPES` lists them. Stages run in
`core.STAGES` order: eligibility (exclusions, segment rates), base, multipliers, bonuses, caps.
"""

from plugin.programme.rules.core import (
    STAGES,
    Contribution,
    Evaluation,
    LineFacts,
    MemberContext,
    OrderFacts,
    Product,
)
from plugin.programme.rules.ruleset import (
    DEFAULT_RULE_SET,
    MAX_RULES,
    RuleSet,
    evaluate,
    missing_products,
    order_cap,
    rule_set,
    validate_rule_set,
)

__all__ = [
    "DEFAULT_RULE_SET",
    "MAX_RULES",
    "STAGES",
    "Contribution",
    "Evaluation",
    "LineFacts",
    "MemberContext",
    "OrderFacts",
    "Product",
    "RuleSet",
    "evaluate",
    "missing_products",
    "order_cap",
    "rule_set",
    "validate_rule_set",
]
