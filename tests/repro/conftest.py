import pytest


@pytest.fixture(autouse=True, scope="module")  # module scope: also covers module-scoped fixtures
def _single_thread(one_thread):
    """Every test here runs on one intra-op thread (see tests/conftest.py)."""
