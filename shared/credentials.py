"""Hashing of random secrets (session keys, later API tokens): shared by identity, which issues them, and the
gateway, which checks them. Secrets are 256 random bits, so a plain SHA-256 suffices (nothing to guess from)."""
import hashlib
import hmac
import secrets


def new_secret():
    return secrets.token_urlsafe(32)


def hash_secret(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret_hash, secret):
    return hmac.compare_digest(secret_hash, hash_secret(secret))
