"""Helpers for integration tests that run the firmware against the strict CSMS.

    from tests.integration.csms_harness import strict_csms

    def test_boot(bench_factory):
        with strict_csms(tags={"04E91C2A": "Accepted"}) as cs:
            ...start the bench with cs.url...
            cs.wait_message("BootNotification", timeout=20)
        # leaving the block asserts that the charger committed no OCPP violation

`allow` lists violation kinds a test provokes on purpose (e.g. a test that
checks the CSMS itself); everything else fails the test with a dump of the
recent traffic.
"""
import contextlib

# One module object for the CSMS everywhere (tests compare DROP etc. by identity).
from tools.csms import DROP, CallErrorReceived, CallErrorReply, CallTimeout, CsmsThread, Delayed  # noqa: F401


def assert_no_violations(cs, allow=()):
    bad = [v for v in cs.violations if v["kind"] not in allow]
    if bad:
        lines = ["%d OCPP violation(s) by the charger:" % len(bad)]
        lines += ["  [%s] %s: %s\n      %s" % (v["kind"], v["cp"], v["error"], (v["message"] or "")[:300])
                  for v in bad]
        raise AssertionError("\n".join(lines) + "\n" + cs.dump())


@contextlib.contextmanager
def strict_csms(allow=(), **kwargs):
    """A CsmsThread that fails the test if the charger broke OCPP 1.6J."""
    with CsmsThread(**kwargs) as cs:
        yield cs
        assert_no_violations(cs, allow)
