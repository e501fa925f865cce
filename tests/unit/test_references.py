"""The gateway's reference rules (gateway/references.py) against a read side of a few documents."""
import pytest

from gateway.references import FIXED_UUIDS, MEMBER_REFERENCES, TYPED_UUIDS, URI_OR_WILDCARD, check_references, check_related, resource_for_table
from services.orders.domain import RELATED_RESOURCES
from shared import catalogue
from shared.errors import InvalidPayload

MINE, THEIRS = "/bureau/aaaaaaaa-0000-0000-0000-000000000001/", "/bureau/bbbbbbbb-0000-0000-0000-000000000002/"
ORDER = "11111111-1111-1111-1111-111111111111"
THEIR_ORDER = "22222222-2222-2222-2222-222222222222"
USER, THEIR_USER = "/users/33333333-3333-3333-3333-333333333333/", "/users/44444444-4444-4444-4444-444444444444/"
COMMENT = "/comment/55555555-5555-5555-5555-555555555555/"


class Store:
    """The read side's `document(path, bureau)`: what a bureau can see."""

    def __init__(self):
        self.docs = {f"/order/{ORDER}/": (MINE, {}), f"/order/{THEIR_ORDER}/": (THEIRS, {}),
                     USER: (MINE, {}), THEIR_USER: (THEIRS, {}),
                     COMMENT: (MINE, {"related_table_name": "order", "related_uuid": ORDER})}

    def document(self, path, bureau):
        found = self.docs.get(path)
        return found[1] if found and found[0] == bureau else None


def refused(check, *args):
    with pytest.raises(InvalidPayload) as error:
        check(*args)
    return error.value.field, error.value.title


def test_table_names_map_to_the_resources_comments_name():
    assert {table: resource_for_table(table) for table in RELATED_RESOURCES} == RELATED_RESOURCES
    assert resource_for_table("material_test_instruction_report") is None  # documented, but no resource of ours
    assert resource_for_table("flat-order") is None  # a view of the gateway's own


def test_every_rule_names_fields_the_catalogue_has():
    pairs = [(spec.name, pair) for spec in catalogue.catalogue().values() for pair in TYPED_UUIDS
             if all(f in spec.writable_fields() for f in pair)]
    assert {name for name, _ in pairs} >= {"comment", "document", "time-entry", "workstation-capacity-data",
                                           "zipfile-request", "secure-file-checkout", "threads-messages",
                                           "permissions"}
    for (resource, field), members in MEMBER_REFERENCES.items():
        spec = catalogue.resource(resource).fields[field]
        assert spec.type == "object" or (spec.type == "array" and spec.items == "object"), (resource, field)
        assert all(kind is None or kind in catalogue.catalogue() for kind in members.values())


def test_a_uuid_named_by_a_table_must_be_the_callers():
    comment = catalogue.resource("comment")
    store = Store()
    check_related(comment, {"related_table_name": "order", "related_uuid": ORDER.upper()}, MINE, store)
    assert refused(check_related, comment, {"related_table_name": "order", "related_uuid": THEIR_ORDER}, MINE,
                   store) == ("related_uuid", f"'related_uuid' names no order of yours: {THEIR_ORDER}")
    assert refused(check_related, comment, {"related_table_name": "line_item", "related_uuid": "not a uuid"}, MINE,
                   store) == ("related_uuid", "'related_uuid' names no line_item of yours: not a uuid")
    document = catalogue.resource("document")
    assert refused(check_related, document, {"related_table_name": "order", "related_uuid": [ORDER, THEIR_ORDER]},
                   MINE, store)[0] == "related_uuid"
    # a change of one half is checked with the stored other half
    stored = store.document(COMMENT, MINE)
    assert refused(check_related, comment, {"related_table_name": "line_item"}, MINE, store, stored)[1] == \
        f"'related_uuid' names no line_item of yours: {ORDER}"
    check_related(comment, {"text": "only the text"}, MINE, store, stored)
    permissions = catalogue.resource("permissions")
    assert refused(check_related, permissions, {"resource_name": "order", "resource_uuid": THEIR_ORDER}, MINE,
                   store)[0] == "resource_uuid"
    check_related(permissions, {"resource_name": "something-else", "resource_uuid": THEIR_ORDER}, MINE, store)


def test_uris_without_a_kind_and_inside_objects_must_be_the_callers():
    store = Store()
    relationship = catalogue.resource("label-relationship")
    check_references(relationship, {"target_uri": f"/order/{ORDER}/"}, MINE, store)
    assert refused(check_references, relationship, {"target_uri": f"/order/{THEIR_ORDER}/"}, MINE, store) == (
        "target_uri", f"'target_uri' does not point at an existing order: /order/{THEIR_ORDER}/")
    comment = catalogue.resource("comment")
    check_references(comment, {"comment_action": {"assignee_user": "http://host/users/"
                                                  "33333333-3333-3333-3333-333333333333"}}, MINE, store)
    assert refused(check_references, comment, {"comment_action": {"assignee_user": THEIR_USER}}, MINE, store) == (
        "comment_action", f"'comment_action.assignee_user' does not point at an existing users: {THEIR_USER}")
    assert refused(check_references, comment, {"mentioned_users": [{"uri": USER}, {"uri": THEIR_USER}]}, MINE,
                   store)[0] == "mentioned_users"
    assert refused(check_references, comment, {"comment_action": {"assignee_user": f"/order/{ORDER}/"}}, MINE,
                   store)[1] == f"'comment_action.assignee_user' does not point at an existing users: /order/{ORDER}/"
    check_references(comment, {"comment_action": {"assignee_user": "not a uri"}}, MINE, store)  # the service's say


def test_references_in_an_action_payload_are_checked():
    replace = catalogue.resource("prep-workflow").action("replace")
    assert refused(check_references, replace, {"order": f"/order/{THEIR_ORDER}/"}, MINE, Store())[0] == "order"


def test_a_zip_of_another_bureaus_order_is_the_documented_404():
    from shared.errors import NotFound

    zipfile_request = catalogue.resource("zipfile-request")
    with pytest.raises(NotFound) as missing:
        check_related(zipfile_request, {"related_table_name": "order", "related_uuid": THEIR_ORDER}, MINE, Store())
    assert missing.value.title == "Some of the requested data cannot be found."


def test_fixed_kind_uuids_and_wildcard_uris_must_be_the_callers():
    store = Store()
    users = catalogue.resource("users")
    check_references(users, {"conversion_expert_uuid": USER.split("/")[2]}, MINE, store)
    assert refused(check_references, users, {"conversion_expert_uuid": THEIR_USER.split("/")[2]}, MINE, store) == (
        "conversion_expert_uuid", f"'conversion_expert_uuid' names no users of yours: {THEIR_USER.split('/')[2]}")
    permissions = catalogue.resource("permissions")
    check_references(permissions, {"holder": "*"}, MINE, store)
    check_references(permissions, {"holder": USER}, MINE, store)
    assert refused(check_references, permissions, {"holder": THEIR_USER}, MINE, store)[0] == "holder"
    assert refused(check_references, permissions, {"holder": "everyone"}, MINE, store) == (
        "holder", "'holder' must be '*' or a resource URI.")
    for (resource, field) in [*FIXED_UUIDS, *URI_OR_WILDCARD]:
        assert field in catalogue.resource(resource).writable_fields(), (resource, field)
