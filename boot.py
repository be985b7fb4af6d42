# Runs before main.py. Nothing to do before the application starts yet (the
# firmware-update issue will apply or roll back an update here).
