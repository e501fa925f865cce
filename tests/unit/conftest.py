import pytest

from services.files.application import Files
from tests.kit.apps import IN_MEMORY


@pytest.fixture
def files():
    app = Files(env=IN_MEMORY)
    yield app
    app.close()
