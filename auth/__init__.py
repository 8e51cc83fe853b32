"""Authentication and roles: API tokens (`Authorization: Bearer`), a signed session cookie for the
dashboard (token or user/password login) naming a session recorded in the store
(store/sessions.py; logout and a changed token or password end it), origin checks and an XSRF
token bound to the session for cookie-authenticated changes, and the operator token made at first
start.

- identity.py: who a request is (Identity, its role check) and whether it may (Authenticator),
  the session lookup, the XSRF token and the origin checks;
- login.py: the login and logout pages, the throttle on failed logins, the password-check pool;
- proxies.py: the client's address and scheme, from forwarding headers of `trusted_proxies` only;
- sessions.py: the app's cookie, XSRF and authenticator settings, and auth.json (the first-start
  operator token and the cookie secret);
- core/credentials.py (below every layer): token and password hashing, the roles.

Tokens and passwords are kept only as hashes; tokens are compared in constant time. Roles:
`viewer` reads (API GETs, dashboards, live updates), `operator` also changes (POST/PATCH).

    python -m auth hash-password      # a `users` entry's password hash
    python -m auth new-token operator # a new token and its `tokens` entry
"""
