"""`flask --app plugin loyalty ...`: the command line, by audience (operations, support, demo)."""
