"""A short seeded chaos run (tools/chaos.py; `make chaos` is the long one):
random sessions with power and network cuts at random instants, checked for
lost or duplicated transactions, energy running backwards and the relay
closing outside an authorized session."""
from tools.chaos import Chaos


def test_short_seeded_chaos_run_finds_no_violation(tmp_path):
    summary, violations = Chaos(20261205, str(tmp_path / "state"), p_power=0.2, p_net=0.15).run(8)
    print(summary)
    assert violations == [], "\n".join(violations + [summary])
    assert " power_cuts=0 " not in summary and " network_cuts=0 " not in summary, summary
