"""`flask --app plugin loyalty ...`: one command group, split by audience (operations, support, rules, demo, import)."""

from plugin.cli import (  # noqa: F401  (importing a module registers its commands)
    demo,
    distribution,
    events,
    expiry,
    milestones,
    operations,
    referrals,
    reports,
    rules,
    support,
    tiers,
)
from plugin.cli.group import loyalty
from plugin.cli.imports import imports_group

loyalty.add_command(imports_group)

__all__ = ["loyalty"]
