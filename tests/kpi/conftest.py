"""Cheap argon2 parameters: the users fixture hashes eight passwords per test (the parameters travel inside each
hash, so verifying is still the real code path)."""

import pytest
from argon2 import PasswordHasher

from app.auth import passwords


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch):
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
