"""The test kit: fixtures and helpers for the suite, never imported by the running system."""
