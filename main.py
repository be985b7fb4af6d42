# Device entry point: start the charger application.
import firmware.app

firmware.app.run()
