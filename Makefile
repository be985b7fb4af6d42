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

.PHONY: setup test unit integration mpycheck typecheck sim mpy romfs deploy repl bench chaos fuzz clean ota

setup: $(STAMP)

# Rebuilt whenever requirements.txt changes (a stale venv is refreshed).
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP) mpycheck typecheck
	$(PY) -m pytest -q tests

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

mpycheck: $(STAMP)
	$(PY) tools/mpy_build.py --check

# pyright over the device code against the MicroPython ESP32 stubs
# (pyrightconfig.json); -t: the stubs' stdlib replaces CPython's typeshed.
typecheck: $(STAMP)
	$(VENV)/bin/pyright -p pyrightconfig.json -t "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

mpy: $(STAMP)
	$(PY) tools/mpy_build.py --out build

# The application as the board runs it: a ROMFS image (docs/flashing.md).
romfs: mpy
	$(PY) tools/romfs.py --out build/jolt.romfs --board esp32 --march xtensawin

# ROMFS image into the romfs partition, entry points on littlefs, data kept, reset
# (a board without ROMFS gets the .mpy files, with a warning about the RAM they cost).
deploy: romfs
	$(PY) tools/deploy.py --port $(PORT) --build build --romfs build/jolt.romfs

# A signed update package (docs/ota.md):
#   make ota OTA_KEY=keys/private.pem OTA_VERSION=0.2.0 [OTA_BOARD=sim] [OTA_VARIANT=business]
OTA_BOARD ?= esp32
OTA_VARIANT ?= any
OTA_MIN ?= 0
ota: $(STAMP)
	@test -n "$(OTA_KEY)" -a -n "$(OTA_VERSION)" || { echo "make ota OTA_KEY=PRIVATE.pem OTA_VERSION=V"; exit 2; }
	$(PY) tools/ota.py build --key $(OTA_KEY) --version $(OTA_VERSION) --board $(OTA_BOARD) \
		--variant $(OTA_VARIANT) --min-version $(OTA_MIN) --out build/jolt-$(OTA_VERSION)-$(OTA_BOARD).jolt

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
	rm -rf build .cache $(SIM_STATE) .pytest_cache
