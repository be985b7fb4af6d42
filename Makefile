# Newcomer entry points: `make sim`, `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CSMS ?=
ID ?= JOLT-SIM-01
VARIANT ?= business
PORT ?= /dev/ttyUSB0
SIM_STATE ?= sim-state
CHAOS_SEED ?= 1
CHAOS_SESSIONS ?= 500

.PHONY: setup test unit integration mpycheck sim mpy romfs deploy repl bench chaos fuzz clean

setup: $(STAMP)

# Rebuilt whenever requirements.txt changes (a stale venv is refreshed).
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP) mpycheck
	$(PY) -m pytest -q tests

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

mpycheck: $(STAMP)
	$(PY) tools/mpy_build.py --check

mpy: $(STAMP)
	$(PY) tools/mpy_build.py --out build

# The application as the board runs it: a ROMFS image (docs/flashing.md).
romfs: mpy
	$(PY) tools/romfs.py --out build/jolt.romfs --board esp32 --march xtensawin

# ROMFS image into the romfs partition, entry points on littlefs, data kept, reset
# (a board without ROMFS gets the .mpy files, with a warning about the RAM they cost).
deploy: romfs
	$(PY) tools/deploy.py --port $(PORT) --build build --romfs build/jolt.romfs

repl: $(STAMP)
	$(VENV)/bin/mpremote connect $(PORT) repl

sim: $(STAMP)
	$(PY) tools/run_sim.py --id $(ID) --variant $(VARIANT) --state $(SIM_STATE) $(if $(CSMS),--csms $(CSMS),)

bench: $(STAMP)
	$(PY) tools/bench/run_all.py

# Never lose a transaction, at scale (docs/never-lose.md); not part of `make test`
# (a short seeded run is). Run it with three seeds: make chaos CHAOS_SEED=2 ...
chaos: $(STAMP)
	$(PY) tools/chaos.py --sessions $(CHAOS_SESSIONS) --seed $(CHAOS_SEED)

# The fuzz tests with 20 times their examples (a short run is part of `make test`).
fuzz: $(STAMP)
	JOLT_FUZZ=20 $(PY) -m pytest -q -p no:cacheprovider tests/unit/test_fuzz_*.py tests/integration/test_hostile_*.py

clean:
	rm -rf build $(SIM_STATE) .pytest_cache
