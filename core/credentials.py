"""Credentials kept only as hashes: API tokens (sha256) and dashboard passwords (scrypt). Pure
functions, so settings can check and hash entries as they load."""

import hashlib
import hmac
import re
import secrets

ROLES = {"viewer": 1, "operator": 2}
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# scrypt with one of OWASP's minimum parameter sets (N=2**14, r=8, p=5: 16 MiB); about 0.34 s per
# check on the 2-CPU test machine, run off the event loop.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 5
SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_entry(entry: str) -> str:
    """`role:token` or `role:sha256:<64 hex>` as `role:sha256:<hex>`; the message never echoes
    the token."""
    role, sep, secret = str(entry).strip().partition(":")
    if not sep or not secret:
        raise ValueError("a tokens entry must be 'role:token' or 'role:sha256:<64 hex digits>'")
    if role not in ROLES:
        raise ValueError(f"a tokens entry has role '{role}'; roles are {', '.join(ROLES)}")
    if secret.startswith("sha256:"):
        digest = secret.removeprefix("sha256:").lower()
        if not SHA256_HEX.fullmatch(digest):
            raise ValueError("a 'role:sha256:' tokens entry needs 64 hex digits after sha256:")
        return f"{role}:sha256:{digest}"
    if len(secret) < 16:
        raise ValueError("a token must be at least 16 characters long")
    return f"{role}:sha256:{hash_token(secret)}"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=SCRYPT_MAXMEM)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    scheme, n, r, p, salt, digest = encoded.split("$")
    computed = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                              p=int(p), maxmem=SCRYPT_MAXMEM)
    return scheme == "scrypt" and hmac.compare_digest(computed.hex(), digest)


def user_entry(entry: str) -> str:
    """`name:role:scrypt$N$r$p$salt$hash`, checked so a typo fails at start-up, not at login."""
    name, role, encoded = [*str(entry).strip().split(":", 2), "", ""][:3]
    if not name or role not in ROLES:
        raise ValueError(f"a users entry must be 'name:role:<password hash>' with role "
                         f"{' or '.join(ROLES)} (entry for '{name}')")
    parts = encoded.split("$")
    if (len(parts) != 6 or parts[0] != "scrypt" or not all(x.isdigit() for x in parts[1:4])
            or not all(re.fullmatch(r"[0-9a-f]+", x) for x in parts[4:])):
        raise ValueError(f"the password hash of user '{name}' is not one `python -m "
                         f"auth hash-password` makes")
    return f"{name}:{role}:{encoded}"
