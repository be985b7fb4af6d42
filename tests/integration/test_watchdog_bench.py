"""On the bench a hung firmware is reset by the watchdog (firmware/watchdog.py
arms board.wdt at boot; the bench is the hardware timer), and the next boot
says so."""
import os
import signal
import time

from tests.integration.rig import Rig


def test_a_hung_firmware_is_reset_and_the_next_boot_reports_the_watchdog(tmp_path, csms):
    with Rig(tmp_path, csms) as rig:
        pid = rig.status()["pid"]
        mark = rig.bench.mark()
        t0 = time.monotonic()
        os.kill(pid, signal.SIGSTOP)  # the whole firmware hangs: nothing feeds the watchdog
        try:
            rig.bench.wait_event("exit", lambda v: "watchdog" in str(v), timeout=20, since=mark)
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        assert time.monotonic() - t0 >= 5  # the 8 s timeout, less up to 2 s since the last (rate-limited) feed
        boot = rig.bench.wait_event("boot", lambda v: v.get("cause") == "watchdog", timeout=20, since=mark)
        assert boot["value"]["pid"] != pid
        csms.wait_message("BootNotification", since_t=t0, timeout=30)
        log = "\n".join(rig.bench.log(400))
        assert "reset=watchdog" in log
        assert "reset by the watchdog: task control loop or event loop hung" in log
