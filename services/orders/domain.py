"""Orders aggregates. Fields and enums come from the catalogue (orders.md §1); the rules live here."""
from services.orders.status import ORDER_MANUAL, check_line_item_transition, check_order_status_request, order_status
from shared.errors import InvalidPayload
from shared.resource import Resource
from shared.uris import resource_path


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
            if self.fields.get("template_name") and changes["template_name"] != self.fields["template_name"]:
                raise InvalidPayload("template_name can be set only once.", field="template_name")
            changes["is_template"] = bool(changes["template_name"])
        super().update(changes, actor)

    # orders.md §1.2 [prop]: a copy carries none of the source's state, production links or template identity.
    NOT_CLONED = ("status", "template_name", "is_template", "line_items", "customer_id", "user", "error", "notes",
                  "estimates", "piece_count", "quote_approved", "build_file_status", "planning_status")

    @classmethod
    def clone_of(cls, source, new_id, actor):
        """A new order copied from `source`, `cloning` until its products and line items are copied."""
        fields = {k: v for k, v in source.fields.items() if k not in cls.NOT_CLONED}
        fields.update(status="cloning", line_items=[], customer_id=str(new_id)[:8], user=actor, is_template=False,
                      cloned_from=resource_path("order", source.id))
        return Resource.create.__func__(cls, new_id, fields, source.bureau, actor)

    def check_deletable_by(self, role):
        """orders.md §1.1: restricted and guest users cannot delete an order once it is confirmed."""
        if role in ("restricted", "self-registered-guest") and self.fields.get("status") not in ("new", "pending",
                                                                                                "calculating_estimates"):
            raise InvalidPayload("You cannot delete order which is already confirmed (this is not allowed for "
                                 "restricted and guest users).", field="status")

    def include(self, line_item, actor):
        """Keep `line_items` listing the order's live line items."""
        path = resource_path("line-item", line_item.id)
        listed = list(self.fields.get("line_items") or [])
        if line_item.deleted and path in listed:
            listed.remove(path)
        elif not line_item.deleted and path not in listed:
            listed.append(path)
        Resource.update(self, {"line_items": listed}, actor)

    def cascade_manual_status(self, line_items, actor):
        """A client's confirm or cancel of the order moves every line item (with the line items' own rules)."""
        requested = self.fields.get("status")
        if requested in ORDER_MANUAL and line_items:
            for item in line_items:
                if item.fields.get("status") not in ("cancelled", "complete"):
                    item.update({"status": requested}, actor)

    def derive_status(self, line_items, actor):
        """orders.md §2.3: the order's status is the aggregate of its line items' (recorded only when it changes)."""
        if line_items or self.fields.get("status") not in ORDER_MANUAL:
            Resource.update(self, {"status": order_status(i.fields.get("status") for i in line_items)}, actor)


class LineItem(Resource):
    resource = "line-item"
    NOT_CLONED = ("status", "order", "product", "uuid")

    @classmethod
    def clone_of(cls, source, new_id, product_path, actor, quantity=None):
        """orders.md §1.4: a copy starts `new`; no runs, pieces or actuals come along."""
        fields = {k: v for k, v in source.fields.items() if k not in cls.NOT_CLONED}
        fields.update(status="new", product=product_path, cloned_from=resource_path("line-item", source.id))
        if quantity is not None:
            fields["quantity"] = quantity
        return Resource.create.__func__(cls, new_id, fields, source.bureau, actor)

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return super().create(id, _check_created_new(fields), bureau, actor)

    def update(self, changes, actor):
        if "status" in changes:
            check_line_item_transition(self.fields.get("status"), changes["status"])
        super().update(changes, actor)

    def join(self, order, actor):
        Resource.update(self, {"order": resource_path("order", order.id)}, actor)
