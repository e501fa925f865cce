"""The E2 trigger matrix (capture-and-platform.md E2, D2): which named domain event makes which notification, and
who receives it. Pure functions of the event (a feed entry, shared.application.ResourceApplication.feed) and of
facts looked up in other services (`facts`, see services.notifications.facts), so they are unit-tested without a
broker.

Recipients for order events come from the bureau-settings bitmask of the event (D2, inferred): 1 = the order
owner, 2 = the customer (the order's customer_email, else the user who placed it), 4 = the bureau's
notification_custom_emails; 0 = nobody. A bureau without settings, or with a bit off, sends nothing for it.
"""
from dataclasses import dataclass, field

from shared.uris import normalise, resource_path, uuid_of

OWNER, CUSTOMER, CUSTOM = 1, 2, 4


@dataclass(frozen=True)
class OrderTrigger:
    name: str  # the event name in the feed (OrderCreated, OrderConfirmed, …)
    template: str
    setting: str  # the bureau-settings bitmask that says who receives it
    status: str | None = None  # for OrderStatusChanged: the new status this trigger is about


# capture-and-platform.md E2 matrix, the rows whose events exist today (orders); production's and shipping's rows
# reach the order as its derived status, so they are read from the order's status change.
ORDER_TRIGGERS = (
    OrderTrigger("OrderCreated", "nautilus.order_created", "notification_order_created"),
    OrderTrigger("OrderConfirmed", "nautilus.order_line_items_confirmed", "notification_line_items_confirmed"),
    OrderTrigger("OrderOwnerChanged", "nautilus.order_owner", "notification_order_owner"),
    OrderTrigger("OrderStatusChanged", "nautilus.order_start_printing", "notification_order_started_printing",
                 status="printing"),
    OrderTrigger("OrderStatusChanged", "nautilus.order_shipped", "notification_order_shipped", status="shipping"),
    OrderTrigger("OrderCompleted", "nautilus.order_complete", "notification_order_completed"),
)
# a model's upload or processing failed: whichever step found it (ModelProcessingFailed, ModelUploadRefused, a
# quarantining ModelVirusScanned) moves its status to one of these
MODEL_FAILED_STATUSES = ("error", "inoperable", "irreparable", "file-too-large")
# order events that are bookkeeping, not news for a webhook receiver
QUIET_ORDER_EVENTS = frozenset({"OrderLineItemsChanged", "OrderEstimatesRecomputed"})


@dataclass
class Intent:
    """A notification (or webhook delivery) a trigger asks for; the subscriber records it once."""
    kind: str  # "email" or "webhook"
    id: object  # deterministic uuid (domain.Notification.id_for / WebhookDelivery.id_for)
    bureau: str | None
    fields: dict = field(default_factory=dict)


def trigger_of(event):
    """`orders:42:OrderConfirmed`: which event made a notification (its feed, position and most specific name)."""
    return f"{event['application']}:{event['position']}:{event['names'][-1]}"


def recipients_by_bitmask(bits, order, settings, facts):
    """The e-mail addresses an order notification goes to under one bureau-settings bitmask, in a stable order."""
    bits = int(bits or 0)
    emails = []
    if bits & OWNER and order.get("order_owner"):
        emails.append(facts.email_of(order["order_owner"]))
    if bits & CUSTOMER:
        emails.append(order.get("customer_email") or (facts.email_of(order["user"]) if order.get("user") else None))
    if bits & CUSTOM:
        emails.extend(settings.get("notification_custom_emails") or [])
    return unique_emails(emails)


def location_contacts(setting, order, facts):
    """materials.md §3.19: the order's location's contact, when the location-settings switch of the same name is on
    (a location without settings, or with the switch off, adds nobody)."""
    location = order.get("location")
    if not location or not facts.location_settings(location).get(setting):
        return []
    contact = facts.location(location).get("contact")
    return [facts.email_of(contact)] if contact else []


def order_recipients(setting, order, settings, facts):
    """E2: the bitmask's recipients ∪ the location's contact (when its switch is on)."""
    return unique_emails(recipients_by_bitmask(settings.get(setting), order, settings, facts)
                         + location_contacts(setting, order, facts))


def unique_emails(emails):
    seen, found = set(), []
    for email in emails:
        if isinstance(email, str) and "@" in email and email.strip().lower() not in seen:
            seen.add(email.strip().lower())
            found.append(email.strip())
    return found


def intents_for(event, facts):
    """Every notification and webhook delivery one feed event asks for (often none)."""
    from services.notifications.domain import Notification, WebhookDelivery  # noqa: avoid a cycle at import

    names = set(event.get("names") or ())
    application, resource = event["application"], event["resource"]
    path = resource_path(resource, event["uuid"])
    intents = []
    if application == "orders" and resource == "order":
        order = facts.order(path, event)
        bureau = event.get("bureau") or order.get("bureau")
        settings = facts.settings(bureau)
        for trigger in ORDER_TRIGGERS:
            if trigger.name not in names:
                continue
            if trigger.status is not None and (event.get("fields") or {}).get("status") != trigger.status:
                continue
            emails = order_recipients(trigger.setting, order, settings, facts)
            if emails:
                intents.append(email_intent(Notification.id_for(trigger_of(event), trigger.template), bureau,
                                            trigger.template, order_context(order, path, event, facts), emails,
                                            event))
        if order.get("callback_url") and event["names"][-1] not in QUIET_ORDER_EVENTS:
            url = order["callback_url"]
            intents.append(Intent("webhook", WebhookDelivery.id_for(trigger_of(event), url), bureau, {
                "order": path, "bureau": bureau, "url": url, "event": event["names"][-1],
                "payload": webhook_payload(event, path, facts)}))
    elif application == "orders" and resource == "comment":
        intents += mention_intents(event, path, facts)
    elif application == "files" and resource == "model" and event["kind"] == "updated" \
            and (event.get("fields") or {}).get("status") in MODEL_FAILED_STATUSES:
        model = dict(facts.get("files", "model", event["uuid"]), **(event.get("fields") or {}))
        owner = model.get("user_uri") or event.get("user")
        emails = unique_emails([facts.email_of(owner)]) if owner else []
        if emails:
            reason = (model.get("analyses") or {}).get("error") if isinstance(model.get("analyses"), dict) else None
            context = {"model_name": model.get("name"), "model_uri": facts.absolute(path),
                       "status": model.get("status"), "reason": reason}
            template = "nautilus.model_upload_failed"
            bureau = event.get("bureau") or facts.user(owner).get("bureau")  # a model has no bureau field
            intents.append(email_intent(Notification.id_for(trigger_of(event), template), bureau, template, context,
                                        emails, event, user=owner))
    elif application == "identity" and resource == "users":
        intents += user_intents(event, path, facts)
    elif application == "production" and resource == "run" and "RunFailed" in names:
        intents += print_error_intents(event, path, facts)
    elif application == "production" and resource == "print" and "PrintAssignedToRun" in names \
            and (event.get("fields") or {}).get("run"):
        intents += order_scheduled_intents(event, path, facts)
    elif application == "production" and resource == "create-runs" and names & {"RunCreationCompleted",
                                                                              "RunCreationFailed"}:
        intents += create_runs_intents(event, path, facts)
    elif application == "materials" and resource == "stock" and "StockBelowMinimum" in names:
        intents += stock_below_minimum_intents(event, path, facts)
    return intents


def _order_mail(order_path, template, setting, id, event, facts, **extra):
    """One order notification of a production event: to the order's recipients under `setting` (or none)."""
    from services.notifications.domain import Notification  # noqa: avoid a cycle at import

    order = facts.get("orders", "order", uuid_of(order_path))
    if not order:
        return []
    bureau = order.get("bureau")
    emails = order_recipients(setting, order, facts.settings(bureau), facts)
    if not emails:
        return []
    context = dict(order_context(order, order_path, event, facts), **extra)
    return [email_intent(id or Notification.id_for(trigger_of(event), template, order_path), bureau, template,
                         context, emails, event)]


def create_runs_intents(event, path, facts):
    """E2 "Packing (create-runs / packing-process) notify-user": the requester is told once the saga ends, when its
    `on_packing_process_failure` is notify-user and pieces did not fit (or it failed), or when its
    `on_packing_process_success` is notify-user and everything was scheduled."""
    from services.notifications.domain import Notification  # noqa: avoid a cycle at import

    saga = dict(facts.get("production", "create-runs", event["uuid"]), **(event.get("fields") or {}))
    unfitted = saga.get("unfitted_pieces") or []
    failed = saga.get("status") == "error" or bool(unfitted)
    option = saga.get("on_packing_process_failure") if failed else saga.get("on_packing_process_success")
    requester = saga.get("user") or event.get("user")
    emails = unique_emails([facts.email_of(requester)]) if option == "notify-user" and requester else []
    if not emails:
        return []
    template = "stratum.create_runs_finished"
    bureau = event.get("bureau") or facts.user(requester).get("bureau")
    context = {"status": saga.get("status"), "failed": failed, "printer_name": saga.get("printer_name"),
               "pieces_count": saga.get("pieces_count"), "resulting_runs_count": saga.get("resulting_runs_count"),
               "unfitted_count": len(unfitted), "notes": saga.get("notes"), "create_runs_uri": facts.absolute(path),
               "primary_run_uri": facts.absolute(saga["primary_run"]) if saga.get("primary_run") else None}
    return [email_intent(Notification.id_for(trigger_of(event), template), bureau, template, context, emails, event,
                         user=requester)]


def print_error_intents(event, path, facts):
    """E2 `nautilus.print_error`: a run failed (RunFailed); every order with a print in it is told once for this
    failure, under `notification_print_error`."""
    run = dict(facts.get("production", "run", event["uuid"]), **(event.get("fields") or {}))
    orders = []
    for print_path in run.get("prints") or []:
        order = facts.get("production", "print", uuid_of(print_path)).get("order")
        if order and order not in orders:
            orders.append(order)
    intents = []
    for order in orders:
        intents += _order_mail(order, "nautilus.print_error", "notification_print_error", None, event, facts,
                               run_name=run.get("name"), run_uri=facts.absolute(path), notes=run.get("notes"))
    return intents


def order_scheduled_intents(event, path, facts):
    """E2 `nautilus.order_scheduled`: all objects of an order are scheduled, i.e. every live piece's first print
    is in a run. Looked at whenever one of its prints joins a run; told once per order (the id is the order's)."""
    from services.notifications.domain import Notification  # noqa: avoid a cycle at import

    print_ = dict(facts.get("production", "print", event["uuid"]), **(event.get("fields") or {}))
    order_path = print_.get("order")
    if not order_path:
        return []
    order = facts.get("orders", "order", uuid_of(order_path))
    first = {}  # piece → its live print at the lowest step
    for line_item in order.get("line_items") or []:
        for found in facts.referencing("production", "print", "line_item", line_item):
            fields = found["fields"]
            if fields.get("status") == "cancelled" or not fields.get("piece"):
                continue
            position = fields.get("process_step_position") or 0
            current = first.get(fields["piece"])
            if current is None or position < (current.get("process_step_position") or 0):
                first[fields["piece"]] = fields
    if not first or not all(p.get("run") for p in first.values()):
        return []
    template = "nautilus.order_scheduled"
    return _order_mail(order_path, template, "notification_order_scheduled",
                       Notification.id_for(f"order-scheduled:{order_path}", template), event, facts,
                       pieces=len(first))


def stock_below_minimum_intents(event, path, facts):
    """E2 `nautilus.stock_available_below_min_quantity` (materials.md Q18, §3.13): stock fell below stock_min. Not
    when what is on order makes up for it (`on_order_quantity` reduces false positives). Recipients (the map names
    none; decided here): the stock location's contact and the bureau's notification_custom_emails."""
    from services.notifications.domain import Notification  # noqa: avoid a cycle at import

    stock = dict(facts.get("materials", "stock", event["uuid"]), **(event.get("fields") or {}))
    quantity, minimum = stock.get("quantity"), stock.get("stock_min")
    if minimum is not None and quantity is not None and quantity + (stock.get("on_order_quantity") or 0) >= minimum:
        return []
    location = facts.location(stock.get("location")) if stock.get("location") else {}
    bureau = event.get("bureau") or location.get("bureau")
    settings = facts.settings(bureau)
    emails = unique_emails(([facts.email_of(location["contact"])] if location.get("contact") else [])
                           + list(settings.get("notification_custom_emails") or []))
    if not emails:
        return []
    material = facts.get("materials", "material", uuid_of(stock["material"])) if stock.get("material") else {}
    template = "nautilus.stock_available_below_min_quantity"
    context = {"material_name": material.get("name"), "location_name": location.get("name"),
               "quantity": quantity, "stock_min": minimum, "on_order_quantity": stock.get("on_order_quantity"),
               "stock_uri": facts.absolute(path)}
    return [email_intent(Notification.id_for(trigger_of(event), template), bureau, template, context, emails,
                         event)]


def email_intent(id, bureau, template, context, emails, event, user=None):
    return Intent("email", id, bureau, {"template": template, "context": context, "emails": emails, "user": user,
                                         "reply_to": None, "trigger": trigger_of(event)})


def order_context(order, path, event, facts):
    owner = facts.user(order["order_owner"]) if order.get("order_owner") else {}
    return {
        "order_name": order.get("name"),
        "order_uri": facts.absolute(path),
        "customer_id": order.get("customer_id"),
        "customer_name": order.get("customer_name"),
        "status": order.get("status"),
        "due_date": order.get("due_date"),
        "owner_name": owner.get("name") or owner.get("username"),
        "line_items": len(order.get("line_items") or []),
        "bureau_name": facts.bureau(order.get("bureau") or event.get("bureau")).get("name"),
        "event": event["names"][-1],
    }


def mentioned_paths(value):
    """comment.mentioned_users: a list of {"uri": …} (the documented shape) or of URIs."""
    paths = []
    for item in value or []:
        uri = item.get("uri") if isinstance(item, dict) else item
        try:
            paths.append(normalise(uri))
        except (TypeError, ValueError):
            continue
    return paths


def mention_intents(event, path, facts):
    """E2: a user mentioned in a comment (at creation, or newly added on a PUT) is told. One notification per
    (comment, user): a user listed again on a later edit is not told twice."""
    from services.notifications.domain import Notification

    fields = event.get("fields") or {}
    if "mentioned_users" not in fields or event["kind"] == "deleted":
        return []
    comment = fields if event["kind"] == "created" else dict(facts.get("orders", "comment", event["uuid"]), **fields)
    author_path = comment.get("user") or event.get("user")
    author = facts.user(author_path) if author_path else {}
    bureau = event.get("bureau") or comment.get("bureau") or author.get("bureau")
    template = "nautilus.user_mentioned_in_comment"
    intents = []
    for user in mentioned_paths(fields["mentioned_users"]):
        emails = unique_emails([facts.email_of(user)])
        if not emails:
            continue
        context = {"author_name": author.get("name") or author.get("username"), "text": comment.get("text"),
                   "related_table_name": comment.get("related_table_name"),
                   "related_uuid": comment.get("related_uuid"), "comment_uri": facts.absolute(path)}
        intents.append(email_intent(Notification.id_for(f"comment:{event['uuid']}", template, user), bureau,
                                    template, context, emails, event, user=user))
    return intents


def user_intents(event, path, facts):
    """E2: a new user is welcomed; a user locked out after failed logins is told; a user who asked for a password
    reset gets the token. The token is not in the notification (its record is readable in the bureau): the
    notifications service asks identity for it when it sends the mail (service.Outbound.send_email)."""
    from services.notifications.domain import Notification

    fields = event.get("fields") or {}
    names = set(event.get("names") or ())
    if event["kind"] == "created":
        template, context, user = "users.welcome_mailer", {"name": fields.get("name"),
                                                          "username": fields.get("username")}, fields
    elif fields.get("blocked_until"):  # UserBlockedForLogin (a plain UserUpdated in older releases)
        user = facts.user(path)
        template, context = "users.blocked_for_login", {"name": user.get("name"),
                                                        "blocked_until": fields["blocked_until"]}
    elif "UserPasswordResetRequested" in names:
        user = facts.user(path)
        template, context = "users.password_reset", {"name": user.get("name"), "username": user.get("username")}
    else:
        return []
    if user.get("archived"):
        return []
    emails = unique_emails([user.get("email") or user.get("username")])
    if not emails:
        return []
    bureau = event.get("bureau") or user.get("bureau")
    return [email_intent(Notification.id_for(trigger_of(event), template), bureau, template, context, emails, event,
                         user=path)]


def webhook_payload(event, path, facts):
    """The JSON body of an order webhook: what happened to the order, by its event name, with the changed fields."""
    return {
        "event": event["names"][-1],
        "names": event["names"],
        "order": facts.absolute(path),
        "position": event["position"],
        "timestamp": event["timestamp"],
        "changes": facts.absolute_fields(event.get("fields") or {}),
    }
