// BrightBlu JOLT charging controller (ESP32, 4 MiB flash, no PSRAM).

#define MICROPY_HW_BOARD_NAME "BrightBlu JOLT"
#define MICROPY_HW_MCU_NAME "ESP32"

// The application is a ROMFS image executed in place from the "romfs"
// partition (memory-mapped flash): its bytecode never enters the GC heap.
// Mounted at /rom at start-up, with /rom and /rom/lib on sys.path.
// The stock ESP32_GENERIC build leaves this off.
#define MICROPY_VFS_ROM (1)
