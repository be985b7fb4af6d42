# Runs before main.py: apply a staged firmware update or roll back a failed one.
try:
    import firmware.update

    firmware.update.on_boot()
except ImportError:
    pass
