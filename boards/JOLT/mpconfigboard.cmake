# BrightBlu JOLT charging controller: ESP32 (WROOM, 4 MiB flash, no PSRAM).
# Built out of tree with the MicroPython esp32 port (>= v1.25, ESP-IDF 5.x):
#   make -C micropython/ports/esp32 BOARD_DIR=$(pwd)/boards/JOLT
# See docs/flashing.md.
include(boards/mpconfigboard_esp32_common.cmake)

list(APPEND SDKCONFIG_DEFAULTS
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The partition table lives next to this file. An sdkconfig file cannot name a
# path relative to an out-of-tree board, so the setting is written here with
# the absolute path and appended like any other sdkconfig fragment.
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.jolt_partitions
    "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions-jolt.csv\"\n")
list(APPEND SDKCONFIG_DEFAULTS
    ${CMAKE_BINARY_DIR}/sdkconfig.jolt_partitions
)
