"""The production service (see ../shared/DESIGN.md for what it owns)."""
