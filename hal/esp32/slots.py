# Application slots on the board: not available yet. The JOLT board
# definition has one `romfs` partition (boards/JOLT/partitions-jolt.csv); two
# ROMFS partitions written with esp32.Partition.writeblocks are future work
# (docs/ota.md). count = 0 turns OTA off with a log line.


class Slots:
    count = 0
    capacity = 0
    sd = None
