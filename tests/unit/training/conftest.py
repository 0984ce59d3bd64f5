"""Small datasets built inside the tests: no dependency on files outside the repository or any download."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.synth import write_synthetic_catalogue


@pytest.fixture(scope="session")
def synthetic_kaggle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 synthetic products in the Kaggle layout (images included)."""
    root = tmp_path_factory.mktemp("kaggle")
    write_synthetic_catalogue(root, 60, seed=7, progress=False)
    return root
