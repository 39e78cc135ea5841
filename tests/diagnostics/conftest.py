import pytest
import torch


@pytest.fixture(autouse=True, scope="module")  # module scope: also covers module-scoped fixtures
def one_thread():
    """These tests run tiny tensors, where intra-op threads only add synchronisation: on a loaded
    2-core machine two threads made them up to 8× slower. Restored afterwards for other suites."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
