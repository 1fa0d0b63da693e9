"""`flask --app plugin loyalty ...`: one command group, split by audience (operations, support, rules, demo)."""

from plugin.cli import demo, operations, rules, support  # noqa: F401  (importing a module registers its commands)
from plugin.cli.group import loyalty

__all__ = ["loyalty"]
