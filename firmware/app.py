# Application wiring: one HAL board, one asyncio loop, cooperative tasks.
import asyncio

import hal
from lib import log


async def _main(board):
    log.info("app", "boot")
    while True:
        await board.wait_input(1000)


def run():
    board = hal.load()
    asyncio.run(_main(board))
