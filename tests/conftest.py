import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture
def tiny_llama():
    from lorascale.models import load_model

    return load_model("tiny-llama", seed=0)


@pytest.fixture
def tiny_bert():
    from lorascale.models import load_model

    return load_model("tiny-bert", seed=0, num_labels=3)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads: on a loaded 2-core machine two threads made the
    diagnostics/repro tests up to 8× slower. Restored afterwards for other suites."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state: a process that trained in fp32 cannot make a bf16 Accelerator."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
