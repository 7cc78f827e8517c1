"""Fixtures and strategies shared by the balancing tests."""

import pytest
from hypothesis import strategies as st

from fastlb import _core


@pytest.fixture(autouse=True)
def balance_counts_nothing():
    """Balancing owns no counted resource: building and freeing balancers leaves every count alone."""
    before = _core.live_counts()
    yield
    assert _core.live_counts() == before


def backend_ids(n: int, prefix: str = "10.0.") -> list[str]:
    """n distinct identities "ip:port", sorted as the caller sorts them."""
    return sorted(f"{prefix}{i // 250}.{i % 250 + 1}:{8000 + i % 7}" for i in range(n))


ids_strategy = st.lists(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=24),
    min_size=1,
    max_size=24,
    unique=True,
).map(sorted)
