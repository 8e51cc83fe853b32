"""Headless Chromium (Debian's package) driven by Playwright's async API inside pytest-tornado's
io_loop, so the app on `base_url` keeps serving while the browser waits."""

import os
import shutil
from contextlib import asynccontextmanager

import pytest

from tests.tokens import OPERATOR_TOKEN

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

playwright_api = pytest.importorskip("playwright.async_api")
if not shutil.which(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (make browser installs it)",
                allow_module_level=True)


async def log_in(page, base_url: str, token: str) -> None:
    """Through the real login page, as a person would; lands on the overview."""
    await page.goto(base_url + "/login")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(base_url + "/")


@asynccontextmanager
async def chromium(base_url: str | None = None, token: str | None = OPERATOR_TOKEN,
                   **context_options):
    """A fresh browser and page, logged in with `token` when `base_url` is given; page errors
    and Content-Security-Policy violations fail the test that opened it."""
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(**context_options)
            context.set_default_timeout(10000)
            page = await context.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and
                    "Content Security Policy" in msg.text else None)
            if base_url is not None and token is not None:
                await log_in(page, base_url, token)
            yield page
            assert errors == [], errors
        finally:
            await browser.close()
