# Rarely used parts of the bench board, imported on first use by
# hal.sim.board.Board.__getattr__ (so they cost no heap until then): each
# function takes the board first, board.net.configure(ssid, pw) is
# configure(board, ssid, pw).


# ---- net
def configure(b, ssid, password):
    b.primary = (ssid, password)
    b.out("wifi", {"ssid": ssid})


# ---- ble (advertise, linked: hal/sim/board.py): the bench's BLE central
# sends {"ble": {"linked": bool, "rx": text}}; answers go out as ble_tx.
def stop(b):
    b.out("ble", None)


def recv(b):
    d = b.ble_rx
    b.ble_rx = b""
    return d or None


def send(b, data):
    if not b.ble_linked:
        return False
    b.out("ble_tx", bytes(data).decode(), False)
    return True


def drop(b):
    b.ble_linked = False
    b.out("ble_drop", None, False)


# ---- system
# ---- meter line
def any(b):
    # 1 when the line has something to read (machine.UART.any() may also
    # answer 1 for "at least one"); the Modbus master only uses readinto().
    if b._f is None:
        return 0
    import select

    p = select.poll()
    p.register(b._f, select.POLLIN)
    return 1 if p.poll(0) else 0
