"""Encryption at rest for shop access tokens (Fernet; several keys allow rotation)."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet


class EncryptionNotConfigured(RuntimeError):
    pass


def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise EncryptionNotConfigured(
            "LOYALTY_ENCRYPTION_KEYS is not set; generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        )
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str, keys: tuple[str, ...]) -> bytes:
    """Encrypt with the first key."""
    return _fernet(keys).encrypt(plaintext.encode())


def decrypt(ciphertext: bytes, keys: tuple[str, ...]) -> str:
    """Decrypt with whichever configured key encrypted it."""
    return _fernet(keys).decrypt(ciphertext).decode()
