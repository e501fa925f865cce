import pytest
from werkzeug.datastructures import MultiDict

from shared import catalogue
from shared.errors import InvalidPayload
from shared.validation import coerce_form, validate

ORDER = catalogue.resource("order")
BUREAU = "/bureau/605ca2fa-de5b-59d5-80b3-9036130d6797/"


def test_post_fills_defaults_and_normalises_uris():
    clean = validate(ORDER, {"name": "n", "bureau": "https://mes.example" + BUREAU}, partial=False)
    assert clean["bureau"] == BUREAU
    assert clean["priority"] == 65 and clean["shipping_grouping"] == "by_batching_strategy"
    assert clean["line_items"] == [] and clean["status"] == "new"


def test_defaults_are_not_shared_between_payloads():
    first = validate(ORDER, {"name": "a", "bureau": BUREAU}, partial=False)
    first["line_items"].append("/line-item/x/")
    assert validate(ORDER, {"name": "b", "bureau": BUREAU}, partial=False)["line_items"] == []


def test_partial_update_checks_only_given_fields_and_drops_read_only_ones():
    assert validate(ORDER, {"priority": 3, "uri": "x", "created": "y"}, partial=True) == {"priority": 3}


@pytest.mark.parametrize("payload, field", [
    ({"name": 5}, "name"),
    ({"priority": True}, "priority"),
    ({"priority": -1}, "priority"),
    ({"status": "shipped"}, "status"),
    ({"due_date": "2020-13-45"}, "due_date"),
    ({"bureau": "/order/605ca2fa-de5b-59d5-80b3-9036130d6797/"}, "bureau"),
    ({"bureau": "not a uri"}, "bureau"),
    ({"line_items": "one"}, "line_items"),
    ({"shipping": []}, "shipping"),
    ({"mystery": 1}, "mystery"),
])
def test_each_bad_value_names_its_field(payload, field):
    with pytest.raises(InvalidPayload) as error:
        validate(ORDER, payload, partial=True)
    assert error.value.field == field and error.value.status == 400


def test_required_fields_on_post():
    with pytest.raises(InvalidPayload) as error:
        validate(ORDER, {"bureau": BUREAU}, partial=False)
    assert error.value.field == "name"


def test_dates_are_stored_in_iso_form():
    assert validate(ORDER, {"due_date": "2026-12-01T10:00:00Z"}, partial=True)["due_date"] == "2026-12-01T10:00:00+00:00"


def test_form_values_are_typed_by_the_catalogue():
    form = MultiDict([("name", "n"), ("priority", "7"), ("quote_required", "false"),
                      ("locations_available", "/location/605ca2fa-de5b-59d5-80b3-9036130d6797/")])
    payload = coerce_form(ORDER, form)
    assert payload["priority"] == 7 and payload["quote_required"] is False
    assert payload["locations_available"] == ["/location/605ca2fa-de5b-59d5-80b3-9036130d6797/"]
    with pytest.raises(InvalidPayload):
        validate(ORDER, coerce_form(ORDER, MultiDict([("priority", "high")])), partial=True)
