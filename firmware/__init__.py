# The long names the firmware's modules use as constants, interned before the
# first of them loads (firmware/names.py); the module itself is not kept.
import sys

from firmware import names

del names, sys.modules["firmware.names"]
