# Bench board for the MicroPython unix port: hal.sim.board.Board (docs/simulator.md).
