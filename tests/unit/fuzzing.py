"""Example counts of the fuzz tests (tests/unit/test_fuzz_*.py): small in
`make test` (the whole set in about a minute), JOLT_FUZZ=N multiplies them
(`make fuzz` runs with JOLT_FUZZ=20)."""
import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("JOLT_FUZZ", "1") or 1))


def fuzz(n, **kw):
    """settings for a property run n times in `make test`, n * JOLT_FUZZ under `make fuzz`."""
    return settings(max_examples=n * SCALE, deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large], **kw)
