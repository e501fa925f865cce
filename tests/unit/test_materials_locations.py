"""Locations and their notification switches (materials.md §3.18, §3.19): a location is made with its one
location-settings row, every switch off, found by its location (the notifications service's lookup); a location an
earlier release stored without settings gets them with its next change; deleting a location deletes them."""
import pytest

from services.materials.locations import SWITCHES, Location, settings_id
from shared.errors import NotFound
from shared.uris import parse_uri, resource_path
from tests.unit.materials_kit import OTHER_BUREAU, Kit


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


def settings_of(kit, location):
    """What the notifications service reads (services.notifications.facts.location_settings)."""
    return kit.app.referencing("location-settings", "location", location, {"platform_admin": True})


def test_a_new_location_comes_with_its_settings_all_switched_off(kit):
    location = kit.location("Annex")
    [found] = settings_of(kit, location)
    assert found["uri"] == resource_path("location-settings", settings_id(parse_uri(location)[1]))
    assert found["fields"] == {"location": location, **{name: False for name in SWITCHES}}
    assert kit.aggregate(found["uri"]).bureau == kit.bureau
    assert kit.app.read("location-settings", parse_uri(found["uri"])[1], kit.ctx())["location"] == location
    with pytest.raises(NotFound):  # another bureau's settings do not exist for the caller
        kit.app.read("location-settings", parse_uri(found["uri"])[1], {"bureau": OTHER_BUREAU})
    assert [f["fields"]["location"] for f in settings_of(kit, kit.location("Store"))] != [location]


def test_a_switch_is_set_by_put_and_the_settings_stay_with_their_location(kit):
    location = kit.location()
    [found] = settings_of(kit, location)
    uuid = parse_uri(found["uri"])[1]
    kit.app.update("location-settings", uuid, {"notification_order_created": True}, kit.ctx())
    assert settings_of(kit, location)[0]["fields"]["notification_order_created"] is True
    # `location` is read-only: ignored on a PUT, as every read-only field (shared.validation)
    kit.app.update("location-settings", uuid, {"location": kit.location("Elsewhere")}, kit.ctx())
    assert settings_of(kit, location)[0]["fields"]["location"] == location


def test_a_location_stored_without_settings_gets_them_with_its_next_change(kit):
    from uuid import uuid4

    old_id = uuid4()  # as an earlier release stored it: the location alone
    old = Location.create(old_id, {"name": "Old", "address": "2 Loop Rd", "bureau": kit.bureau}, kit.bureau, None)
    kit.app.save(old)
    location = resource_path("location", old_id)
    assert settings_of(kit, location) == []  # all switches off, as the notifications service reads it
    kit.app.update("location", str(old_id), {"phone": "+1 555 0100"}, kit.ctx())
    [found] = settings_of(kit, location)
    assert found["fields"]["notification_order_created"] is False
    kit.app.update("location", str(old_id), {"phone": "+1 555 0101"}, kit.ctx())  # made once only
    assert len(settings_of(kit, location)) == 1


def test_deleting_a_location_deletes_its_settings(kit):
    location = kit.location()
    [found] = settings_of(kit, location)
    kit.app.delete("location", parse_uri(location)[1], kit.ctx())
    assert settings_of(kit, location) == []
    with pytest.raises(NotFound):
        kit.app.read("location-settings", parse_uri(found["uri"])[1], kit.ctx())
