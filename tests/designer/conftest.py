import pytest

from app.auth.operations import create_user
from app.core.db import transaction
from tests.conftest import PASSWORD


@pytest.fixture
def designer2(users, tree):
    """A second designer, to approve the first one's deploys."""
    with transaction():
        return create_user("designer2", PASSWORD, ["designer"], tree["city"], "designer2")
