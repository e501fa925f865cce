"""Who may do what (capture-and-platform.md D0, D1, D5): the access rules, as data and pure functions. The gateway
enforces them on every write; the roles they rank are the identity service's `role` resources.

Roles rank manager > location-manager > global-user > standard-user > location-user > restricted >
self-registered-guest > unknown; a user's highest role in the bureau counts. Bureau administration (users, roles,
groups, custom groups and fields, feature flags, settings) is for the bureau's managers; creating bureaus is for
platform administrators (the bootstrap account), who may also act in any bureau.
"""
RANK = ["unknown", "self-registered-guest", "restricted", "location-user", "standard-user", "global-user",
        "location-manager", "manager"]
DEFAULT_ROLE = "standard-user"  # a member with no role row yet

MANAGER_ONLY = frozenset({
    "users", "role", "groups", "memberships", "custom-group", "custom_field", "feature", "bureau", "bureau-settings",
    "bureau-branding", "bureau-intake-settings", "permissions", "permission-bureau", "integration",
    # capture-and-platform.md E2/E3: mails sent in the bureau's name, and announcements to all its users
    "notifications", "bureau-notification",
})
PLATFORM_ONLY_CREATE = frozenset({"bureau"})
# Resources that belong to one user rather than to the bureau (capture-and-platform.md C2: a token's `user_uuid` is
# its owner): only that user sees them (LIST, GET, their audit rows) and revokes them; to every other user, the
# bureau's managers included, they do not exist (404). Platform administrators see all. Resource → the document field
# holding the owner's uuid; the read side applies it wherever it scopes documents (gateway/readstore.py).
OWNED_BY_USER = {"api_tokens": "user_uuid"}
# Platform reference data (capture-and-platform.md A1, A2): the machine catalogue every bureau reads. The capture
# service writes these documents with no bureau (services/capture/machines.py); the read side shows a document of
# these resources that has no bureau to every caller. A copy some service stored *with* a bureau stays that bureau's.
PLATFORM_RESOURCES = frozenset({"modeler-type", "capture-type"})
# Events after which none of a user's current sessions and API tokens may be used any more (capture-and-platform.md
# C4: `archived` is a soft delete; a new password replaces one that may have leaked). The read side ends them when it
# applies such an event, in feed order: the session that made the change ends too (a thief's session looks just like
# the owner's; logging in again costs one request), and sessions begun after it are untouched, on a rebuild as well.
CREDENTIALS_END_ON = frozenset({"UserArchived", "UserPasswordChanged"})
READ_ONLY_ROLES = frozenset({"unknown"})


def highest(roles):
    known = [r for r in roles if r in RANK]
    return max(known, key=RANK.index) if known else DEFAULT_ROLE


def write_refusal(resource, verb, role, platform_admin):
    """Why `role` may not `verb` (POST/PUT/DELETE) this resource, or None when it may."""
    if platform_admin:
        return None
    if verb == "POST" and resource in PLATFORM_ONLY_CREATE:
        return "Only a platform administrator can create bureaus."
    if resource in MANAGER_ONLY and role != "manager":
        return f"Only a manager of the bureau can change {resource}."
    if role in READ_ONLY_ROLES:
        return "Your role in this bureau does not allow changes."
    return None


def allowed_actions(resource, role, platform_admin, verbs):
    """What /access-info-for-resource/ answers for one resource."""
    actions = ["read"] if "GET" in verbs or "LIST" in verbs else []
    for verb, action in (("PUT", "update"), ("DELETE", "delete")):
        if verb in verbs and write_refusal(resource, verb, role, platform_admin) is None:
            actions.append(action)
    return actions
