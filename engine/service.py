"""What server.py starts beside the web server: the engine and, with `demo`, the demo."""

from core.settings import Settings
from engine.demo import Demo
from engine.scheduler import Engine


class EngineService:
    def __init__(self, store, settings: Settings):
        self.engine: Engine | None = None
        self.demo: Demo | None = None
        if settings.engine:
            self.engine = Engine(
                store, settings.data_dir, cpus=settings.engine_cpus, mem=settings.engine_mem,
                cancel_grace=settings.cancel_grace, poll_interval=settings.engine_poll_interval,
                reserve_after=settings.engine_reserve_after,
                dead_after=settings.engine_dead_after, port=settings.port,
                sandbox=settings.sandbox, job_user=settings.job_user,
                executor=settings.executor, slurm_partition=settings.slurm_partition,
                slurm_poll_interval=settings.slurm_poll_interval,
                slurm_extra_args=settings.slurm_extra_args)
        if settings.demo:
            self.demo = Demo(store, self.engine, settings.data_dir)

    async def start(self) -> "EngineService":
        if self.engine is not None:
            await self.engine.start()
        if self.demo is not None:
            await self.demo.start()
        return self

    def running(self) -> int:
        """How many executions the engine runs now (0 without an engine)."""
        return 0 if self.engine is None else len(self.engine.runners)

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
