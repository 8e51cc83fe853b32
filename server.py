"""Jobdeck: one process serving the Job Services API, the dashboards and live updates."""

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import tornado.web
from pymongo.errors import ConfigurationError, PyMongoError
from tornado.httpserver import HTTPServer

from auth.sessions import app_settings, login_url, server_auth
from core.datalock import DataDirInUse, DataDirLock
from core.private import PRIVATE_UMASK, private_dir
from core.settings import Settings, SettingsError, load_settings
from engine.service import EngineService
from handlers.base import NotFoundHandler
from handlers.health import record_request
from http_server import LimitedApplication, http_server_options
from live.hub import LiveHub
from routes import routes
from store import Store
from store.backup import command as backup_command
from store.embedded import EmbeddedMongo, EmbeddedStoreError

log = logging.getLogger("jobdeck")


ROOT = Path(__file__).resolve().parent


def make_app(store: Store, settings: Settings, hub: LiveHub, *, engine=None,
             embedded_store: EmbeddedMongo | None = None) -> tornado.web.Application:
    """The web application. Handlers reach `settings` as `self.settings["config"]` and the live
    `hub` as `self.settings["hub"]`; the caller owns the hub and stops it. `auth`,
    `tokens`, `users` and `cookie_secret` configure auth/; `engine` is the job engine,
    None when it does not run here; `embedded_store`: the embedded store's process, for /health."""
    return LimitedApplication(
        routes(), store=store, config=settings, hub=hub, engine=engine,
        embedded_store=embedded_store, default_handler_class=NotFoundHandler,
        log_function=record_request, template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"), **app_settings(settings))


# Seconds a stopping server waits for requests in flight before it closes what remains.
CLOSE_TIMEOUT = 5.0


async def serve(settings: Settings) -> int:
    embedded = lock = None
    url = settings.mongo_url
    # auth.json, the executions and the uploads are there with --mongo-url too.
    private_dir(settings.data_dir)
    if not url:
        started = await start_embedded_store(settings)
        if started is None:
            return 2
        lock, embedded, url = started
    store = Store(url, settings.db_name, settings.store_timeout_ms,
                  data_dir=settings.data_dir if embedded is not None else None)
    engine_service = hub = None
    supervisor = None
    try:
        if not await store.ping():
            log.error("cannot reach the store at %s within %d ms (store_timeout_ms); check that "
                      "it runs, or leave out --mongo-url to use the embedded store", url,
                      settings.store_timeout_ms)
            return 2
        await store.open()
        store.counts.keep()  # fold job counts in the background (store/counts.py)
        store.samples.keep()  # queue depth and running, once a minute (store/samples.py)
        hub = LiveHub(store, settings.live_stale_after)
        engine_service = await EngineService(store, settings).start()
        if embedded is not None:
            supervisor = asyncio.create_task(embedded.supervise(
                lambda: recover_after_store_restart(hub, engine_service,
                                                    settings.store_timeout_ms)))
        server = listen(store, settings, hub, engine_service, embedded, lock)
        await until_stopped(settings, engine_service)
        await close_connections(server)
    finally:
        if supervisor is not None:
            supervisor.cancel()
        if engine_service is not None:
            await engine_service.stop()
        if hub is not None:
            await hub.stop()
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if lock is not None:
            lock.release()
    return 0


async def start_embedded_store(
        settings: Settings) -> tuple[DataDirLock, EmbeddedMongo, str] | None:
    """Lock the data folder and start the embedded store in it: the lock, the store and its
    URL, or None (logged) when the store cannot take `db_name`."""
    data_dir = Path(settings.data_dir)
    # One server per data folder (before anything in it is touched): a second one would
    # restart the first one's store as "stale", and their supervisors would fight over it.
    lock = DataDirLock(data_dir).acquire()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        embedded = EmbeddedMongo(data_dir, db_name=settings.db_name)
    except ValueError as exc:
        log.error("db_name: %s", exc)
        return None
    url = await asyncio.to_thread(embedded.start)
    log.info("embedded store (nx-27017) ready at %s, data in %s", url, data_dir.resolve())
    return lock, embedded, url


def listen(store: Store, settings: Settings, hub: LiveHub, engine_service: EngineService,
           embedded: EmbeddedMongo | None, lock: DataDirLock | None) -> HTTPServer:
    """Serve the app with the credentials in effect (made at a first start, its login URL
    logged once), and record the port in the data folder's lock."""
    auth, new_token = server_auth(settings)
    settings = settings.replace(**auth)  # the credentials in effect (first start: made)
    app = make_app(store, settings, hub, engine=engine_service.engine, embedded_store=embedded)
    server = app.listen(settings.port, settings.host, **http_server_options(settings))
    if lock is not None:
        lock.record(settings.port or listening_port(server))
    log.info("Jobdeck ready at http://%s:%s/", settings.host, settings.port)
    if new_token:
        log.warning("first start: made an operator token (only its hash is kept). Log in "
                    "with this URL, shown once:\n\n    %s\n",
                    login_url(settings.host, settings.port, new_token))
    return server


async def until_stopped(settings: Settings, engine_service: EngineService) -> None:
    """Until SIGINT or SIGTERM; then, with `drain_timeout`, drain (a second signal stops it)."""
    stop, again = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: (again if stop.is_set() else stop).set())
    await stop.wait()
    if settings.drain_timeout > 0 and engine_service.engine is not None:
        await drain(engine_service, settings.drain_timeout, again)


async def close_connections(server: HTTPServer) -> None:
    log.info("stopping")
    server.stop()
    try:
        await asyncio.wait_for(server.close_all_connections(), CLOSE_TIMEOUT)
    except TimeoutError:
        log.warning("connections still busy %g s after stopping; closing anyway", CLOSE_TIMEOUT)


def listening_port(server) -> int:
    """The port Tornado's HTTPServer bound (for `--port 0`)."""
    return next(iter(server._sockets.values())).getsockname()[1]


async def drain(engine_service: EngineService, timeout: float, again: asyncio.Event) -> None:
    """`drain_timeout`: start no more jobs, keep serving (API, dashboards, live feed, /health
    says `draining`) and wait up to `timeout` seconds for the running executions to end; a
    second signal (`again`) ends the wait at once. Those still running are then failed by the
    engine's stop, as without draining."""
    log.info("draining: no new jobs start; waiting up to %g s (drain_timeout) for %d running "
             "executions while still serving; signal again to stop at once", timeout,
             engine_service.running())
    draining = asyncio.create_task(engine_service.drain(timeout))
    interrupted = asyncio.create_task(again.wait())
    await asyncio.wait((draining, interrupted), return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if not draining.done():
        draining.cancel()
        log.warning("second signal: stopping now, without waiting for %d running executions",
                    engine_service.running())
    elif left := draining.result():
        log.warning("drain_timeout (%g s) is over with %d executions still running", timeout,
                    left)
    else:
        log.info("drained: every running execution has ended")


async def recover_after_store_restart(hub: LiveHub, engine_service: EngineService,
                                      timeout_ms: int) -> None:
    """The embedded store came back: re-read the job changes the live feed may have missed and
    fail the executions whose outcome could not be written (retried per max_tries), once now and
    once more when every store call begun during the outage has succeeded or given up."""
    await hub.feed.resync()
    if engine_service.engine is not None:
        await engine_service.engine.recover()
        await asyncio.sleep(timeout_ms / 1000 + 1)
        await engine_service.engine.recover()


# Subcommands (store/backup.py): `python server.py backup DEST`, `python server.py restore BACKUP`.
COMMANDS = ("backup", "restore")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # What the server (its store, its jobs, backup and restore) makes is its user's alone.
    os.umask(PRIVATE_UMASK)
    if argv[:1] and argv[0] in COMMANDS:
        return backup_command(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    try:
        settings = load_settings(argv)
    except SettingsError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(settings))
    except SettingsError as exc:  # found once the engine starts (sandbox, job_user)
        log.error("%s", exc)
        return 2
    except DataDirInUse as exc:
        log.error("%s", exc)
        return 2
    except EmbeddedStoreError as exc:
        log.error("the embedded store did not start: %s", exc)
        return 2
    except ConfigurationError as exc:
        log.error("mongo_url %r is not usable: %s", settings.mongo_url, exc)
        return 2
    except PyMongoError as exc:
        log.error("the store failed while the server started: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
