# Device entry point: the application slot boot.py chose, then the charger.
import sys

import boot

boot.mount()
del boot, sys.modules["boot"]  # source compiled into the heap: not kept
import firmware.app

firmware.app.run()
