"""The server-side request forgery guard for calls the system makes to addresses its clients chose (model
callbacks, order webhooks): OWASP API7. A URL must be http(s), and it may not resolve to a loopback, private,
link-local or otherwise non-global address unless the deployment allows it (STRATUM_CALLBACKS_ALLOW_PRIVATE: `1`
allows every address, for on-premise setups; a comma-separated list of networks, e.g. `127.0.0.1/32`, allows only
those). The address is checked when the call is made, not when the URL is stored, so a name that later resolves
inward is refused too."""
import ipaddress
import socket
from urllib.parse import urlparse

ALLOW_ALL = ("1", "true", "yes")


def is_http_url(url):
    if not isinstance(url, str):
        return False
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def internal_address(host, allow=""):
    """The first non-global address `host` resolves to that `allow` does not permit, or None (unresolvable names
    are None too: the call itself will fail)."""
    allow = (allow or "").strip().lower()
    if allow in ALLOW_ALL:
        return None
    allowed = [ipaddress.ip_network(n.strip(), strict=False) for n in allow.split(",") if n.strip()]
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return None
    for address in sorted(addresses):
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global and not any(ip.version == n.version and ip in n for n in allowed):
            return address
    return None


def refusal(url, allow=""):
    """Why the system may not call `url`, or None when it may."""
    if not is_http_url(url):
        return "not an http or https URL"
    internal = internal_address(urlparse(url).hostname, allow)
    if internal:
        return f"refused: {urlparse(url).hostname} resolves to the internal address {internal}"
    return None
