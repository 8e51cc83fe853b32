"""API tokens the test app is configured with (tests/fixtures.py `app`); the `api` client sends
the operator one."""

from core.settings import Settings

OPERATOR_TOKEN = "test-operator-token-0123456789abcdef"
VIEWER_TOKEN = "test-viewer-token-0123456789abcdef"
OPERATOR_HEADERS = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
VIEWER_HEADERS = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
TOKENS = (f"operator:{OPERATOR_TOKEN}", f"viewer:{VIEWER_TOKEN}")
# make_app settings for a test app: auth on, one token of each role, every other setting its
# built-in default; a test varies them with TEST_SETTINGS.replace(name=value, ...).
TEST_SETTINGS = Settings(auth=True, tokens=TOKENS)
