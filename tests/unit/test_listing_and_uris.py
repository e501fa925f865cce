import pytest

from gateway import listing
from shared import catalogue, uris
from shared.errors import InvalidPayload

ORDER = catalogue.resource("order")


def test_filters_sort_and_pages():
    query = listing.parse(ORDER, "filter%5Bstatus%5D=new,printing&filter[priority]>10&filter[priority]<90"
                                 "&sort=-priority,name&page[limit]=5&page[offset]=10&include_piece_count=true")
    assert [(f.field, f.op, f.values) for f in query.filters] == [
        ("status", "in", ["new", "printing"]), ("priority", ">", [10]), ("priority", "<", [90])]
    assert query.sort == [("priority", True), ("name", False)]
    assert (query.limit, query.offset) == (5, 10)
    assert query.flags == {"include_piece_count": "true"}


def test_uri_filters_accept_absolute_uris():
    query = listing.parse(ORDER, "filter[bureau]=http://h:8000/bureau/605ca2fa-de5b-59d5-80b3-9036130d6797/")
    assert query.filters[0].values == ["/bureau/605ca2fa-de5b-59d5-80b3-9036130d6797/"]


@pytest.mark.parametrize("query_string", [
    "filter[nope]=1", "sort=nope", "page[limit]=0", "page[limit]=100000", "page[offset]=-1",
    "filter[priority]=high", "filter[shipping]>1", "filter[bureau]=not-a-uri",
])
def test_bad_queries_are_400(query_string):
    with pytest.raises(InvalidPayload):
        listing.parse(ORDER, query_string)


def test_uris_round_trip():
    path = "/order/605ca2fa-de5b-59d5-80b3-9036130d6797/"
    assert uris.normalise("https://mes.example/api" + path) == path
    assert uris.absolute("http://h:1/", path) == "http://h:1" + path
    assert uris.parse_uri(path.upper().replace("/ORDER/", "/order/")) == ("order", path.split("/")[2])
    with pytest.raises(ValueError):
        uris.parse_uri("/order/not-a-uuid/")


def test_multi_segment_resource_uris():
    uuid = "605ca2fa-de5b-59d5-80b3-9036130d6797"
    assert uris.parse_uri(f"http://h/guideline/comparator/{uuid}/") == ("guideline/comparator", uuid)
    assert uris.parse_uri(f"https://h/api/v2/material-test/unit/{uuid}") == ("material-test/unit", uuid)
    assert uris.parse_uri(f"https://h/api/order/{uuid}/") == ("order", uuid)
