"""The HTTP gateway and its read side (projections of every service's events)."""
