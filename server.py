"""Jobdeck: one process serving the Job Services API, the dashboards and live updates."""

import asyncio
import logging
import signal
import sys
from pathlib import Path

import tornado.web
from pymongo.errors import ConfigurationError, PyMongoError

from config import SettingsError, load_settings
from engine.service import EngineService
from handlers.auth import app_settings, login_url, server_auth
from handlers.base import LimitedApplication, NotFoundHandler, http_server_options
from handlers.health import record_request
from handlers.routes import routes
from live.hub import hub_for, stop_hub
from store import Store
from store.embedded import EmbeddedMongo, EmbeddedStoreError

log = logging.getLogger("jobdeck")


ROOT = Path(__file__).resolve().parent


def make_app(store: Store, **settings) -> tornado.web.Application:
    """`auth` (default on), `tokens`, `users` and `cookie_secret` configure handlers/auth.py."""
    return LimitedApplication(
        routes(), store=store, default_handler_class=NotFoundHandler,
        log_function=record_request, template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"), **app_settings(settings))


# Seconds a stopping server waits for requests in flight before it closes what remains.
CLOSE_TIMEOUT = 5.0


async def serve(settings: dict) -> int:
    embedded = None
    url = settings["mongo_url"]
    if not url:
        data_dir = Path(settings["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedMongo(data_dir)
        url = await asyncio.to_thread(embedded.start)
        log.info("embedded store (nx-27017) ready at %s, data in %s", url, data_dir.resolve())
    store = Store(url, settings["db_name"], settings["store_timeout_ms"])
    engine_service = None
    supervisor = None
    try:
        if not await store.ping():
            log.error("cannot reach the store at %s within %d ms (store_timeout_ms); check that "
                      "it runs, or leave out --mongo-url to use the embedded store", url,
                      settings["store_timeout_ms"])
            return 2
        await store.open()
        engine_service = await EngineService(store, settings).start()
        if embedded is not None:
            supervisor = asyncio.create_task(embedded.supervise(
                lambda: recover_after_store_restart(store, engine_service,
                                                    settings["store_timeout_ms"])))
        auth, new_token = server_auth(settings)
        app = make_app(store, data_dir=settings["data_dir"], engine=engine_service.engine, **auth,
                       embedded_store=embedded,
                       **{k: v for k, v in settings.items() if k.startswith(("ws_", "max_"))})
        server = app.listen(settings["port"], settings["host"], xheaders=True,
                            **http_server_options(settings))
        log.info("Jobdeck ready at http://%s:%s/", settings["host"], settings["port"])
        if new_token:
            log.warning("first start: made an operator token (only its hash is kept). Log in "
                        "with this URL, shown once:\n\n    %s\n",
                        login_url(settings["host"], settings["port"], new_token))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        server.stop()
        try:
            await asyncio.wait_for(server.close_all_connections(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("connections still busy %g s after stopping; closing anyway",
                        CLOSE_TIMEOUT)
    finally:
        if supervisor is not None:
            supervisor.cancel()
        if engine_service is not None:
            await engine_service.stop()
        await stop_hub(store)
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    return 0


async def recover_after_store_restart(store: Store, engine_service: EngineService,
                                      timeout_ms: int) -> None:
    """The embedded store came back: re-read the job changes the live feed may have missed and
    fail the executions whose outcome could not be written (retried per max_tries), once now and
    once more when every store call begun during the outage has succeeded or given up."""
    await hub_for(store).feed.resync()
    if engine_service.engine is not None:
        await engine_service.engine.recover()
        await asyncio.sleep(timeout_ms / 1000 + 1)
        await engine_service.engine.recover()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    try:
        settings = load_settings(argv)
    except SettingsError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(settings))
    except EmbeddedStoreError as exc:
        log.error("the embedded store did not start: %s", exc)
        return 2
    except ConfigurationError as exc:
        log.error("mongo_url %r is not usable: %s", settings["mongo_url"], exc)
        return 2
    except PyMongoError as exc:
        log.error("the store failed while the server started: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
