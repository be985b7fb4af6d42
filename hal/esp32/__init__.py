# The JOLT board (plain ESP32, no PSRAM): hal.esp32.board.Board; pin map in hal/esp32/pins.py.
