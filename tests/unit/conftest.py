import pytest

from services.files.application import Files
from shared.testing.apps import IN_MEMORY


@pytest.fixture
def files():
    app = Files(env=IN_MEMORY)
    yield app
    app.close()
