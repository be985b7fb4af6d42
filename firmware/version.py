# Identity reported in BootNotification.
VENDOR = "BrightBlu"
FIRMWARE = "0.1.0"
MODELS = {"business": "JOLT Business", "homeplus": "JOLT Home Plus"}
