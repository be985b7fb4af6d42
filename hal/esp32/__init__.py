# The JOLT board (ESP32-S3): hal.esp32.board.Board; pin map in hal/esp32/pins.py.
