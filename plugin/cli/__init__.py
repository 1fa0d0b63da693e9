"""`flask --app plugin loyalty ...`: one command group, its commands split by audience (operations, support, demo)."""

from plugin.cli import demo, operations, support  # noqa: F401  (importing a module registers its commands)
from plugin.cli.group import loyalty

__all__ = ["loyalty"]
