"""Password and secret hashing: argon2id through argon2-cffi, with its recommended parameters
(RFC 9106's low-memory profile). Only hashes are stored; verifying takes about 0.1 s of one
core, which is the point: a stolen database is slow to guess from."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (a new salt each time)."""
    return _hasher.hash(password)


def verify(stored: str, password: str) -> bool:
    """Whether `password` matches the `stored` hash (never raises for a wrong or odd one)."""
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_secret(nbytes: int) -> str:
    """A random URL-safe secret of `nbytes` bytes that never starts with '-': users pass secrets
    after options (`--os-password S`), and argparse would read a leading '-' as another option."""
    while True:
        secret = secrets.token_urlsafe(nbytes)
        if not secret.startswith("-"):
            return secret
