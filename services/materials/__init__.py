"""The materials service (see ../shared/DESIGN.md for what it owns)."""
