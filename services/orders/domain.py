"""Orders aggregates. Fields and enums come from the catalogue (orders.md §1); the rules live here."""
from services.orders.status import check_line_item_transition, check_order_status_request
from shared.errors import InvalidPayload
from shared.resource import Resource


def _check_created_new(fields):
    """A client creates orders and line items as `new`; later statuses are reached by the documented moves."""
    if fields.get("status") not in (None, "new"):
        raise InvalidPayload("Provided status transformation is not allowed", field="status")
    return dict(fields, status="new")


class Order(Resource):
    resource = "order"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = _check_created_new(fields)
        # orders.md §1.1: customer_id defaults to the first 8 characters of the UUID.
        if not fields.get("customer_id"):
            fields["customer_id"] = str(id)[:8]
        fields["user"] = actor
        fields["is_template"] = bool(fields.get("template_name"))
        return super().create(id, fields, bureau, actor)

    def update(self, changes, actor):
        changes = dict(changes)
        if "status" in changes:
            check_order_status_request(self.fields.get("status"), changes["status"])
        if "template_name" in changes:
            changes["is_template"] = bool(changes["template_name"])
        super().update(changes, actor)


class LineItem(Resource):
    resource = "line-item"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return super().create(id, _check_created_new(fields), bureau, actor)

    def update(self, changes, actor):
        if "status" in changes:
            check_line_item_transition(self.fields.get("status"), changes["status"])
        super().update(changes, actor)
