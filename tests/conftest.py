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
