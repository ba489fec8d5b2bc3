"""Shared pytest fixtures."""

import pytest

from hipsluigi.testing import luigi_options


@pytest.fixture
def luigi_config():
    """``with luigi_config({"hips": {"order": 2}}): ...`` sets options and restores them."""
    return luigi_options
