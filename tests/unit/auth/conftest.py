from __future__ import annotations

import pytest

from proxy.auth.keys import KeyRing

NOW = 1_700_000_000.0


@pytest.fixture
def ring() -> KeyRing:
    """Two active keys (rotation): k1 the default for signing, k2 the newer one."""
    return KeyRing({"k1": b"first secret key", "k2": b"second secret key"}, default_kid="k1")
