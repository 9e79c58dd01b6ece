"""Running a coroutine from a test."""

import asyncio


def run(coroutine):
    """Run a coroutine on a loop of its own (leaving the current loop, e.g. a reactor's, alone)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
