# Device entry point: the application slot boot.py chose, then the charger.
import boot

boot.mount()
import firmware.app

firmware.app.run()
