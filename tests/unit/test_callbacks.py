"""Model callbacks: their shape is checked at POST, and the server will not call internal addresses unless told."""
import pytest

from services.files.callbacks import check_callback, deliver
from shared.errors import InvalidPayload


@pytest.mark.parametrize("callback", [
    "http://example.com/hook", {"method": "POST"}, {"url": "ftp://example.com/x"}, {"url": "file:///etc/passwd"},
    {"url": "http://example.com/x", "method": "DELETE"},
])
def test_bad_callbacks_are_refused(callback):
    with pytest.raises(InvalidPayload) as error:
        check_callback(callback)
    assert error.value.field == "callback"


def test_a_good_callback_is_normalised():
    assert check_callback({"url": "https://example.com/hook", "method": "put"}) == {
        "url": "https://example.com/hook", "method": "PUT"}
    assert check_callback({"url": "http://example.com/hook"})["method"] == "POST"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/latest/meta-data/"])
def test_internal_addresses_are_not_called(url):
    slept = []
    assert deliver({"url": url, "method": "POST"}, {"status": "processed"}, sleep=slept.append) is False
    assert slept == []  # refused before any attempt, not retried
