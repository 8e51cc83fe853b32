"""python -m auth hash-password | new-token viewer|operator: a `users` entry's password hash, or a
new token and its `tokens` entry (only hashes go into settings.yaml)."""

import getpass
import secrets
import sys

from core.credentials import ROLES, hash_password, token_entry


def main(argv: list[str]) -> int:
    if argv[:1] == ["hash-password"]:
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != password:
                print("the passwords differ", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            print("a password must be at least 8 characters long", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    if len(argv) == 2 and argv[0] == "new-token" and argv[1] in ROLES:
        token = secrets.token_urlsafe(32)
        print(f"token (give it to the client; it is not stored): {token}")
        print(f"tokens entry for settings.yaml: {token_entry(f'{argv[1]}:{token}')}")
        return 0
    print("usage: python -m auth hash-password | new-token viewer|operator",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
