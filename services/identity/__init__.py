"""The identity service: bureaus, users, sessions (and later tokens, roles, groups, feature flags)."""
