"""E-mail: Jinja2 templates (a plain-text and an HTML part per template, one subject line each) rendered into a
MIME message, and the two ways a message leaves: an SMTP server (STRATUM_SMTP_URL) or, without one, an outbox
folder under STRATUM_DATA_DIR where each message is a `.eml` file (for `make run` and demos).

Message-ID is derived from the notification's id, which is derived from the event that made it, so a message sent
again after a crash (see services.notifications.delivery) carries the same Message-ID and can be recognised as
the same mail.
"""
import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from urllib.parse import parse_qs, unquote, urlparse

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, TemplateNotFound, select_autoescape

log = logging.getLogger(__name__)
TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
DEFAULT_FROM = "notifications@stratum.local"
SMTP_TIMEOUT = 20

# One subject per template (Jinja2 expressions over the same context as the bodies).
SUBJECTS = {
    "nautilus.order_created": "New order {{ order_name }}",
    "nautilus.order_line_items_confirmed": "Order {{ order_name }}: all line items confirmed",
    "nautilus.order_owner": "You are now the owner of order {{ order_name }}",
    "nautilus.order_start_printing": "Order {{ order_name }} started printing",
    "nautilus.order_shipped": "Order {{ order_name }} is shipping",
    "nautilus.order_complete": "Order {{ order_name }} is complete",
    "nautilus.order_scheduled": "Order {{ order_name }} is scheduled",
    "nautilus.print_error": "Order {{ order_name }}: printing failed{% if run_name %} in run {{ run_name }}{% endif %}",
    "nautilus.stock_available_below_min_quantity": "Stock of {{ material_name or 'a material' }}"
                                                   "{% if location_name %} at {{ location_name }}{% endif %} is low",
    "nautilus.user_mentioned_in_comment": "{{ author_name or 'Someone' }} mentioned you in a comment",
    "nautilus.model_upload_failed": "Your model {{ model_name }} could not be processed",
    "users.welcome_mailer": "Welcome to {{ bureau_name or 'Stratum' }}",
    "users.blocked_for_login": "Your account is locked after too many failed logins",
    "customer.support_request": "Support request from {{ user_name or user_email or 'a user' }}"
                                "{% if requesting_bureau %} ({{ requesting_bureau }}){% endif %}",
    "users.password_reset": "Reset your {{ bureau_name or 'Stratum' }} password",
    "stratum.create_runs_finished": "{% if status == 'error' %}Runs on {{ printer_name }} could not be created"
                                    "{% elif failed %}Runs on {{ printer_name }}: {{ unfitted_count }} piece(s) did not "
                                    "fit{% else %}Runs on {{ printer_name }} are created{% endif %}",
}
GENERIC_SUBJECT = "{{ subject or template }}"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_text_env = _env.overlay(autoescape=False)


def _body(env, template, suffix, context):
    try:
        source = env.get_template(f"{template}.{suffix}")
    except TemplateNotFound:  # a template without its own text: every context value, listed
        source = env.get_template(f"_generic.{suffix}")
    return source.render(context)


def render(template, context):
    """(subject, plain text, HTML) of one template with its context."""
    fields = {k: v for k, v in (context or {}).items() if k != "fields"}
    context = dict(context or {}, template=template, fields=fields)
    subject = _text_env.from_string(SUBJECTS.get(template, GENERIC_SUBJECT)).render(context)
    return " ".join(subject.split()), _body(_text_env, template, "txt", context), _body(_env, template, "html", context)


def message_id(notification_id, sender):
    domain = sender.rpartition("@")[2] or "stratum.local"
    return f"<{notification_id}@{domain}>"


def build_message(notification_id, fields, sender_address, sender_name=None, reply_to=None):
    subject, text, html = render(fields["template"], fields.get("context"))
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = formataddr((sender_name, sender_address)) if sender_name else sender_address
    message["To"] = ", ".join(fields["emails"])
    if reply_to:
        message["Reply-To"] = reply_to
    message["Message-ID"] = message_id(notification_id, sender_address)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["X-Stratum-Template"] = fields["template"]
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class SmtpTransport:
    """smtp://[user:password@]host[:port][?starttls=1], or smtps:// for TLS from the first byte."""

    def __init__(self, url, timeout=SMTP_TIMEOUT):
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps"):
            raise ValueError(f"STRATUM_SMTP_URL must start with smtp:// or smtps://, got {url!r}")
        self.implicit_tls = parsed.scheme == "smtps"
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        query = parse_qs(parsed.query)
        self.starttls = (query.get("starttls") or [""])[0].lower() in ("1", "true", "yes")
        self.timeout = timeout

    def describe(self):
        return f"smtp{'s' if self.implicit_tls else ''}://{self.host}:{self.port}"

    def send(self, message):
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            refused = client.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


class OutboxTransport:
    """Writes each message to <folder>/<Message-ID>.eml; writing the same message again replaces the file, so a
    resend after a crash leaves one file."""

    def __init__(self, folder):
        self.folder = folder

    def describe(self):
        return f"outbox folder {self.folder}"

    def send(self, message):
        os.makedirs(self.folder, exist_ok=True)
        name = message["Message-ID"].strip("<>").replace("/", "_").replace("@", "_at_") + ".eml"
        temporary = os.path.join(self.folder, "." + name + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(bytes(message))
        os.replace(temporary, os.path.join(self.folder, name))


def transport_for(config):
    if config.get("STRATUM_SMTP_URL"):
        return SmtpTransport(config["STRATUM_SMTP_URL"])
    return OutboxTransport(os.path.join(config["STRATUM_DATA_DIR"], "outbox"))
