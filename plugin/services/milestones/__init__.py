"""Milestones and engagement: member-level grants, birthdays, custom actions and surveys (docs/milestones.md)."""
