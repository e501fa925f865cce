"""Development tools (the catalogue generator): run from a checkout, never part of the running system."""
