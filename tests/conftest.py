"""Shared test fixtures.

Tests that use the real IR/VIS data in ../shared/data ask for the ``shared_data``
fixture: it skips, saying why, when the folder is absent (a clean clone elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real IR/VIS data not found at {SHARED_DATA} (it sits beside the repository on project machines)")
    return SHARED_DATA
