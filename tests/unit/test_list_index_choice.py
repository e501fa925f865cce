"""Which list keys are indexed from the start and which on first use (gateway.indexes)."""
from gateway import indexes
from shared import catalogue


def test_an_order_has_only_its_default_sort_indexed_from_the_start():
    order = catalogue.resource("order")
    assert indexes.always_indexed(order) == {"created"}
    assert indexes.built_fields(order) == {"created"}
    assert indexes.built_fields(order, {"name", "line_items", "no such field"}) == {"created", "name"}


def test_the_catalogue_s_required_and_default_filters_and_the_owner_field_are_always_indexed():
    assert indexes.always_indexed(catalogue.resource("line-item")) == {"created", "type"}  # default filter
    assert indexes.always_indexed(catalogue.resource("sensor-data")) >= {"sensor"}  # required filter
    assert indexes.always_indexed(catalogue.resource("api_tokens")) == {"created", "user_uuid"}  # owner


def test_a_list_asks_for_the_indexes_of_its_other_scalar_fields_only():
    assert indexes.lazily_indexed("order", ["created", "name", "status", "line_items", "name", "nope"]) == [
        "name", "status"]
    assert indexes.lazily_indexed("line-item", ["type", "order"]) == ["order"]
    assert indexes.lazily_indexed("no-such-resource", ["name"]) == []


def test_every_field_is_indexed_from_the_start_when_the_operator_says_all(monkeypatch):
    monkeypatch.setenv(indexes.LIST_INDEXES, "all")
    order = catalogue.resource("order")
    assert indexes.built_fields(order) == set(indexes.indexed_fields(order))
    assert indexes.lazily_indexed("order", ["name"]) == []


def test_the_digest_does_not_depend_on_which_indexes_are_built(monkeypatch):
    """An index built on first use changes no resource's digest (else the migrate step would remake its table), and
    the digests equal those of the release that built every index (no remake on upgrade)."""
    before = indexes.digest("order", "postgresql")
    monkeypatch.setenv(indexes.LIST_INDEXES, "all")
    assert indexes.digest("order", "postgresql") == before
