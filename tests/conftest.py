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


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder this process cannot write: chmod 555, or as root (who ignores modes) a read-only tmpfs;
    skipped where neither is possible."""
    import os
    import subprocess

    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    mounted = False
    if os.access(path, os.W_OK):
        path.chmod(0o755)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
        mounted = res.returncode == 0 and not os.access(path, os.W_OK)
        if not mounted:
            pytest.skip("cannot make a read-only folder here (root without mount permission)")
    yield path
    if mounted:
        subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o755)
