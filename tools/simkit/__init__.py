"""Bench internals for tools/sim.py (CPython only): Modbus meter, bench, client."""
