"""Order aggregate. Fields and enums come from the catalogue (orders.md §1.1); rules live here."""
from shared.resource import Resource


class Order(Resource):
    resource = "order"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields)
        # orders.md §1.1: customer_id defaults to the first 8 characters of the UUID.
        if not fields.get("customer_id"):
            fields["customer_id"] = str(id)[:8]
        fields["user"] = actor
        fields["is_template"] = bool(fields.get("template_name"))
        return super().create(id, fields, bureau, actor)

    def update(self, changes, actor):
        changes = dict(changes)
        if "template_name" in changes:
            changes["is_template"] = bool(changes["template_name"])
        super().update(changes, actor)
