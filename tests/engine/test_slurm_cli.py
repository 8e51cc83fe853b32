"""engine/slurm.py's run_cli, the one way the Slurm backend runs a Slurm command, without a
cluster: a command the engine stops waiting for is killed and reaped at once."""

import asyncio
import gc
from asyncio.base_subprocess import BaseSubprocessTransport

import psutil
import pytest

from engine.slurm import run_cli


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE}


@pytest.mark.gen_test(timeout=30)
async def test_a_command_canceled_mid_way_is_killed_and_its_pipes_closed():
    """Canceled (the engine stops while squeue runs), the command must not outlive the wait, nor
    leave its pipes for the garbage collector: closed after the event loop, they raise "Event
    loop is closed" from a finalizer, which at a pytest session's end crashed the run."""
    before = children()
    task = asyncio.create_task(run_cli("sleep", "30"))
    while not children() - before:
        await asyncio.sleep(0.01)
    [pid] = children() - before
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    await asyncio.sleep(0)  # the transport's close is a callback away
    assert not [t for t in gc.get_objects()
                if isinstance(t, BaseSubprocessTransport) and not t.is_closing()]


@pytest.mark.gen_test(timeout=30)
async def test_a_command_past_its_timeout_is_killed_and_says_so():
    result = await run_cli("sleep", "30", timeout=0.2)
    assert (result.code, result.out, result.err) == (-1, "", "sleep did not answer within 0.2 s")
