"""Jobdeck: one process serving the Job Services API, the dashboards and live updates."""

import asyncio
import logging
import signal
import sys
from pathlib import Path

import tornado.web

from config import SettingsError, load_settings
from engine.service import EngineService
from handlers.base import NotFoundHandler
from handlers.health import record_request
from handlers.routes import routes
from live.hub import stop_hub
from store import Store
from store.embedded import EmbeddedMongo, EmbeddedStoreError

log = logging.getLogger("jobdeck")


ROOT = Path(__file__).resolve().parent


def make_app(store: Store, **settings) -> tornado.web.Application:
    return tornado.web.Application(
        routes(), store=store, default_handler_class=NotFoundHandler,
        log_function=record_request, template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"), **settings)


async def serve(settings: dict) -> int:
    embedded = None
    url = settings["mongo_url"]
    if not url:
        data_dir = Path(settings["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedMongo(data_dir)
        url = await asyncio.to_thread(embedded.start)
        log.info("embedded store (nx-27017) ready at %s, data in %s", url, data_dir.resolve())
    store = Store(url, settings["db_name"])
    engine_service = None
    try:
        if not await store.ping():
            log.error("cannot reach the store at %s", url)
            return 2
        await store.open()
        engine_service = await EngineService(store, settings).start()
        app = make_app(store, data_dir=settings["data_dir"], engine=engine_service.engine,
                       **{k: v for k, v in settings.items() if k.startswith("ws_")})
        server = app.listen(settings["port"], settings["host"], xheaders=True)
        log.info("Jobdeck ready at http://%s:%s/", settings["host"], settings["port"])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        server.stop()
        await server.close_all_connections()
    finally:
        if engine_service is not None:
            await engine_service.stop()
        await stop_hub(store)
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
