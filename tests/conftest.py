import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random-weight Llama with the default model's tokenizer (built offline)."""
    from rlvr.models import tiny_random_model

    return tiny_random_model(tmp_path_factory.mktemp("tiny") / "model")
