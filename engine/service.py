"""What server.py starts beside the web server: the engine and, with `demo`, the demo."""

from engine.demo import Demo
from engine.scheduler import Engine


class EngineService:
    def __init__(self, store, settings: dict):
        self.engine = None
        self.demo = None
        if settings.get("engine", True):
            self.engine = Engine(
                store, settings["data_dir"], cpus=settings.get("engine_cpus"),
                mem=settings.get("engine_mem"), cancel_grace=settings.get("cancel_grace", 10.0),
                poll_interval=settings.get("engine_poll_interval", 0.5),
                reserve_after=settings.get("engine_reserve_after", 60.0),
                dead_after=settings.get("engine_dead_after", 30.0),
                port=settings.get("port"))
        if settings.get("demo"):
            self.demo = Demo(store, self.engine, settings["data_dir"])

    async def start(self) -> "EngineService":
        if self.engine is not None:
            await self.engine.start()
        if self.demo is not None:
            await self.demo.start()
        return self

    async def drain(self, timeout: float) -> int:
        """Stop starting jobs (and the demo's submissions) and wait up to `timeout` seconds for
        the running executions to end; how many still run. stop() fails those."""
        if self.demo is not None:
            await self.demo.stop()
        if self.engine is None:
            return 0
        return await self.engine.drain(timeout)

    async def stop(self) -> None:
        if self.demo is not None:
            await self.demo.stop()
        if self.engine is not None:
            await self.engine.stop()
