# Device entry point: the application slot boot.py chose, then the charger.
import sys

import boot

boot.mount()
# Source compiled into the heap: kept only while the application will need
# boot.healthy(), since compiling it again later needs more than a small heap has.
if not boot.pending():
    del sys.modules["boot"]
del boot
import firmware.app

firmware.app.run()
