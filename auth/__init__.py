"""Authentication and roles: API tokens (`Authorization: Bearer`), a signed session cookie for the
dashboard (token or user/password login), XSRF for cookie-authenticated changes, and the operator
token made at first start.

- identity.py: who a request is (Identity, its role check) and whether it may (Authenticator);
- login.py: the login and logout pages, and the throttle on failed logins;
- sessions.py: the app's cookie, XSRF and authenticator settings, and auth.json (the first-start
  operator token and the cookie secret);
- core/credentials.py (below every layer): token and password hashing, the roles.

Tokens and passwords are kept only as hashes; tokens are compared in constant time. Roles:
`viewer` reads (API GETs, dashboards, live updates), `operator` also changes (POST/PATCH).

    python -m auth hash-password      # a `users` entry's password hash
    python -m auth new-token operator # a new token and its `tokens` entry
"""
