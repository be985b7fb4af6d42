#!/usr/bin/env python3
"""Chaos run: seeded random charging sessions on the bench against the strict
central system, with power cuts and network cuts at random instants, then a
check of the never-lose promises (docs/never-lose.md).

  tools/chaos.py [--sessions 500] [--seed N] [--p-power 0.1] [--p-net 0.13] [--state DIR]

Cuts fall between the steps of a session and at random delays after them:
during Authorize, with StartTransaction in flight, before and after its
answer, while charging, during StopTransaction, while offline with a
backlog, and during boot (a second power cut right after power-on). Journal
writes happen at every one of these steps, so cuts land inside them too.

Checked at the end, from the central system's record and the bench's events:
  - every acknowledged StartTransaction has exactly one StopTransaction;
  - a power cut while charging ends that transaction with reason PowerLoss;
  - nothing acknowledged is processed twice (a resend under its UniqueId is
    answered again by the central system, not processed);
  - the energy register never decreases across a transaction's
    StartTransaction, MeterValues, transactionData and StopTransaction, nor
    from one transaction to the next (Business unit);
  - the relay closed only with the EV in C after a card in the same plug-in
    and power-on;
  - no OCPP violation (schema, framing, ...) by the charger.
Prints one summary line with the counts and the seed; exit status 1 on any
violation.
"""
import argparse
import calendar
import json
import os
import random
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.csms import CsmsThread  # noqa: E402
from tools.simkit.bench import MP64_HEAP  # noqa: E402
from tools.simkit.client import BenchProcess  # noqa: E402

EAIR = "Energy.Active.Import.Register"
# Rotated per session, and after each power cut a session uses its next card
# (suffix): so a StartTransaction payload is unique, and the transaction a cut
# interrupted is told apart from one started after it (in the same second).
TAGS = ["CHAOS%02d" % i for i in range(60)]
AFTER_CUT = ("", "B", "C", "D")
BENCH_LAG_S = 0.1
CUT_WINDOW_S = 15  # a transaction cut while charging began at most this long before the cut
CONFIG = {
    "TransactionMessageRetryInterval": "1",
    "MeterValueSampleInterval": "1",
    "HeartbeatInterval": "300",
}


class Chaos:
    def __init__(self, seed, state, p_power=0.1, p_net=0.13, heapsize=None, out=print, progress=0,
                 variant="business", config=None):
        self.rng = random.Random(seed)
        self.seed = seed
        self.state = state
        self.p_power = p_power
        self.p_net = p_net
        self.heapsize = heapsize or MP64_HEAP
        self.out = out
        self.variant = variant
        self.config = dict(CONFIG, **(config or {}))
        self.progress = progress  # a progress line every that many sessions (0: none)
        self.sessions = 0
        self.power_cuts = 0
        self.charging_cuts = []   # (tag, wall time) of each power cut with the relay closed
        self.net_cuts = 0
        self.net_down = False
        self.csms = None
        self.bench = None

    # --- driving the bench -------------------------------------------------------

    def cmd(self, **kw):
        return self.bench.cmd(kw)

    def sleep(self, a, b):
        time.sleep(self.rng.uniform(a, b))

    def power_cut(self):
        st = self.bench.status()
        if st["relay"]:
            self.charging_cuts.append((self.tag, time.time()))
        self.cards += 1
        self.tag = TAGS[self.sessions % len(TAGS)] + AFTER_CUT[self.cards % len(AFTER_CUT)]
        self.power_cuts += 1
        self.cmd(cmd="power", on=False)
        self.sleep(0.0, 0.2)
        self.cmd(cmd="power", on=True)
        if self.rng.random() < 0.15:
            # during boot: cut again while it comes up
            self.sleep(0.05, 0.8)
            self.power_cuts += 1
            self.cmd(cmd="power", on=False)
            self.sleep(0.0, 0.1)
            self.cmd(cmd="power", on=True)
        self.wait_link()

    def wait_link(self, timeout=20):
        # The board's hardware link is up once the firmware runs: inputs reach it.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bench.status()["link"]:
                return
            time.sleep(0.02)

    def net_toggle(self):
        if self.net_down:
            self.cmd(cmd="network", up=True)
            self.net_down = False
            return
        self.net_cuts += 1
        self.cmd(cmd="network", up=False)
        self.net_down = True
        if self.rng.random() < 0.6:
            # a short outage; otherwise it lasts a few steps (offline with a backlog)
            self.sleep(0.05, 1.0)
            self.cmd(cmd="network", up=True)
            self.net_down = False

    def maybe_cut(self):
        """A step boundary: maybe a power cut or a network cut, at a random instant after it."""
        r = self.rng.random()
        if r < self.p_power:
            self.sleep(0.0, 0.4)
            self.power_cut()
            return True
        if r < self.p_power + self.p_net or (self.net_down and r < self.p_power + 3 * self.p_net):
            self.sleep(0.0, 0.4)
            self.net_toggle()
        return False

    def card(self):
        # rfid is only delivered while the firmware runs
        for _ in range(50):
            if self.cmd(cmd="rfid", id=self.tag).get("delivered"):
                return
            time.sleep(0.05)

    def session(self):
        self.sessions += 1
        self.tag = TAGS[self.sessions % len(TAGS)]
        self.cards = 0
        self.cmd(cmd="plug")
        self.maybe_cut()
        self.card()
        self.sleep(0.0, 0.3)                 # Authorize / StartTransaction in flight
        self.maybe_cut()
        self.cmd(cmd="ev", state="C")
        self.sleep(0.1, 0.5)
        self.maybe_cut()
        for _ in range(self.rng.randint(1, 3)):  # charging, MeterValues every second
            self.sleep(0.2, 0.9)
            if self.maybe_cut():
                break
        if self.rng.random() < 0.5:
            self.card()                      # the owner stops
            self.sleep(0.0, 0.3)             # StopTransaction in flight
            self.maybe_cut()
        self.cmd(cmd="unplug")
        self.sleep(0.0, 0.3)
        self.maybe_cut()
        self.sleep(0.05, 0.3)

    def settle(self, timeout=120):
        """Link up and everything queued delivered: every acknowledged start has a stop, quiet wire."""
        if self.net_down:
            self.cmd(cmd="network", up=True)
            self.net_down = False
        self.csms.wait_connected("CHAOS", timeout=30)
        deadline = time.monotonic() + timeout
        last = None
        quiet = 0
        while time.monotonic() < deadline:
            n = len(self.csms.messages)
            open_tx = [t for t, tx in self.csms.transactions.items() if tx["stop"] is None]
            quiet = quiet + 1 if n == last else 0
            last = n
            if not open_tx and quiet >= 4:
                return
            time.sleep(1)

    def run(self, sessions):
        t0 = time.monotonic()
        tags = {t + b: "Accepted" for t in TAGS for b in AFTER_CUT}
        with CsmsThread(tags=tags, heartbeat_interval=300) as cs:
            self.csms = cs
            self.bench = BenchProcess(self.state, cs.url, "CHAOS", config=self.config,
                                      heapsize=self.heapsize, variant=self.variant)
            self.bench.start()
            try:
                cs.wait_connected("CHAOS", timeout=30)
                self.cmd(cmd="ev_current", amps=16)
                for i in range(sessions):
                    self.session()
                    if self.progress and (i + 1) % self.progress == 0:
                        self.out("chaos: %d sessions, %d power cuts (charging %d), %d network cuts, %ds"
                                 % (i + 1, self.power_cuts, len(self.charging_cuts), self.net_cuts,
                                    time.monotonic() - t0))
                self.settle()
                events = []
                since = 0
                while True:
                    evs, nxt = self.bench.events(since)
                    if not evs:
                        break
                    events += evs
                    since = nxt
            finally:
                self.bench.stop()
            restart = self.config.get("OnPowerLossRestart", "false").lower() == "true"
            violations = check(cs.messages, events, self.charging_cuts, self.variant != "homeplus", restart)
            violations += ["OCPP violation [%s]: %s" % (v["kind"], v["error"]) for v in cs.violations]
            if violations:  # the record, to study what happened
                with open(os.path.join(os.path.dirname(self.state), "chaos-record.json"), "w") as f:
                    json.dump({"seed": self.seed, "charging_cuts": self.charging_cuts, "events": events,
                               "messages": [{k: m[k] for k in ("t", "wall", "dir", "type", "id", "action",
                                                               "payload", "resent") if k in m}
                                            for m in cs.messages]}, f)
        starts = processed(cs.messages, "StartTransaction")
        summary = ("chaos: seed=%d sessions=%d transactions=%d power_cuts=%d (charging %d) network_cuts=%d "
                   "messages=%d violations=%d time=%ds"
                   % (self.seed, self.sessions, len(starts), self.power_cuts, len(self.charging_cuts),
                      self.net_cuts, len(cs.messages), len(violations), time.monotonic() - t0))
        return summary, violations


# --- the checks -------------------------------------------------------------------


def processed(messages, action):
    """CALLs the central system acted on (a resend under its UniqueId is not)."""
    return [m for m in messages if m["dir"] == "in" and m["type"] == 2 and m["action"] == action
            and not m.get("resent")]


def energies(meter_values):
    """[(epoch, Wh)] of the Energy.Active.Import.Register values in a list of meterValue."""
    out = []
    for mv in meter_values or []:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", "Energy.Active.Import.Register") == EAIR:
                out.append((_epoch(mv["timestamp"]), int(float(sv["value"]))))
    return out


def backwards(start, samples, stop):
    """Where the register runs backwards: every sample between meterStart and
    meterStop, and a sample never below one taken in an earlier second."""
    out = []
    for name, pts in samples:
        for ts, e in pts:
            if e < start:
                out.append("%s %d below meterStart %d" % (name, e, start))
            if stop is not None and e > stop:
                out.append("%s %d above meterStop %d" % (name, e, stop))
    pts = sorted((ts, e, name) for name, lst in samples for ts, e in lst)
    best = None  # highest value of the seconds before the current one
    cur_ts, cur_max = None, None
    for ts, e, name in pts:
        if ts != cur_ts:
            if cur_max is not None and (best is None or cur_max > best[0]):
                best = (cur_max, cur_ts)
            cur_ts, cur_max = ts, None
        if best is not None and e < best[0]:
            out.append("%s %d at %d below %d reported at %d" % (name, e, ts, best[0], best[1]))
        cur_max = e if cur_max is None or e > cur_max else cur_max
    if stop is not None and stop < start:
        out.append("meterStop %d below meterStart %d" % (stop, start))
    return out


def check(messages, events, charging_cuts, business=True, restart=False):
    """Violations of the never-lose promises. business: meterStart never below the
    previous meterStop (a Home Plus unit counts each session from 0). restart:
    OnPowerLossRestart is on (the charger restarts a cut transaction for the same
    card, the relay may close again without a new card)."""
    v = []
    answers = {m["id"]: m["payload"] for m in messages
               if m["dir"] == "out" and m["type"] == 3 and m["action"] == "StartTransaction"}
    starts = processed(messages, "StartTransaction")
    stops = processed(messages, "StopTransaction")
    mvs = processed(messages, "MeterValues")
    # Nothing processed twice.
    # (With OnPowerLossRestart two restarts for one card can start in the same
    # second on the same register: the same payload, two transactions. A start
    # processed twice shows there as a transactionId without a stop.)
    for action, lst in (("StartTransaction", [] if restart else starts), ("StopTransaction", stops),
                        ("MeterValues", mvs)):
        seen = set()
        for m in lst:
            key = repr(sorted(m["payload"].items()))
            if key in seen:
                v.append("%s processed twice: %s" % (action, json.dumps(m["payload"])[:200]))
            seen.add(key)
    # Every acknowledged start has exactly one stop.
    tx = []  # (tid, start payload) in delivery order
    for m in starts:
        a = answers.get(m["id"])
        if a is None or "transactionId" not in a:
            continue
        tx.append((a["transactionId"], m["payload"]))
    stop_of = {}
    for m in stops:
        tid = m["payload"]["transactionId"]
        if tid in stop_of:
            v.append("two StopTransactions for transaction %s" % tid)
        stop_of[tid] = m["payload"]
    known = set(t for t, _ in tx)
    for t, start in tx:
        if t not in stop_of:
            v.append("transaction %s (%s, meterStart %s) has no StopTransaction"
                     % (t, start["idTag"], start["meterStart"]))
    for t in stop_of:
        if t not in known:
            v.append("StopTransaction for unknown transaction %s" % t)
    # Energy never runs backwards, within a transaction and across them.
    mv_of = {}
    for m in mvs:
        p = m["payload"]
        if "transactionId" in p:
            mv_of.setdefault(p["transactionId"], []).extend(energies(p["meterValue"]))
    prev = None
    for t, start in tx:
        stop = stop_of.get(t)
        samples = [("MeterValues", mv_of.get(t, []))]
        if stop is not None:
            samples.append(("transactionData", energies(stop.get("transactionData"))))
        for b in backwards(start["meterStart"], samples, stop and stop["meterStop"]):
            v.append("transaction %s: energy backwards: %s" % (t, b))
        if business and prev is not None and start["meterStart"] < prev[1]:
            v.append("transaction %s meterStart %d below the previous meterStop %d (transaction %s)"
                     % (t, start["meterStart"], prev[1], prev[0]))
        if stop is not None:
            prev = (t, stop["meterStop"])
    # A power cut while charging ends that transaction with PowerLoss.
    for tag, wall in charging_cuts:
        # The session's card started it in the seconds before the cut (the card
        # changes after each cut; the same card was last used a minute before).
        # An OnPowerLossRestart transaction has the same card and comes after it.
        # With OnPowerLossRestart the charging one may be a restart under an
        # earlier card of the session: one of the session's transactions then.
        same = (lambda s: s["idTag"][:len(TAGS[0])] == tag[:len(TAGS[0])]) if restart else \
            (lambda s: s["idTag"] == tag)
        cand = [t for t, s in tx if same(s) and wall - CUT_WINDOW_S <= _epoch(s["timestamp"]) <= wall + 1]
        if not cand and not restart:
            # A card shown after the previous session ended (a second card, or
            # the stop card read twice) authorizes the next plug-in: that
            # transaction carries the earlier card. The one charging at the cut
            # is then the last one started before it.
            before = [(_epoch(s["timestamp"]), t) for t, s in tx
                      if wall - CUT_WINDOW_S <= _epoch(s["timestamp"]) <= wall]
            cand = [max(before)[1]] if before else []
        if not cand:
            v.append("power cut while charging (%s at %.1f): no transaction found" % (tag, wall))
            continue
        if restart:
            if not any(stop_of.get(t, {}).get("reason") == "PowerLoss" for t in cand):
                v.append("power cut while charging (%s at %.1f): no PowerLoss stop" % (tag, wall))
            continue
        t = min(cand)
        stop = stop_of.get(t)
        if stop is not None and stop.get("reason") != "PowerLoss":
            v.append("transaction %s (%s) cut while charging at %.1f ended with %s"
                     % (t, tag, wall, stop.get("reason")))
    # The relay closed only with the EV in C after a card in this plug-in and
    # power-on (or within BENCH_LAG_S after that ended: the bench stamps an
    # output when it reads it off the HAL link, the firmware decided it before
    # the input that ended it reached it).
    authorized = pilot_c = False
    ok_until = -1.0
    for e in events:
        if e["kind"] == "input":
            was = authorized and pilot_c
            c = e["value"].get("cmd")
            if c in ("plug", "unplug") or (c == "power" and not e["value"].get("on") and not restart):
                authorized = False
            if c == "unplug":
                pilot_c = False
            elif c == "rfid":
                authorized = True
            elif c == "ev":
                pilot_c = e["value"].get("state") == "C"
            if was and not (authorized and pilot_c):
                ok_until = e["t"] + BENCH_LAG_S
        elif e["kind"] == "relay" and e["value"] is True and not (authorized and pilot_c) and e["t"] > ok_until:
            v.append("relay closed outside an authorized session (event %d)" % e["seq"])
    return v


def _epoch(iso):
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--p-power", type=float, default=0.1, help="chance of a power cut at each step")
    ap.add_argument("--p-net", type=float, default=0.13, help="chance of a network cut at each step")
    ap.add_argument("--state", default=None, help="bench state dir (default: a fresh temporary one, removed)")
    ap.add_argument("--heapsize", default=None)
    ap.add_argument("--variant", default="business", choices=("business", "homeplus"))
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="charger configuration on top of the run's own (e.g. OnPowerLossRestart=true)")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1, 10 ** 6)
    tmp = None
    state = a.state
    if state is None:
        tmp = tempfile.mkdtemp(prefix="jolt-chaos-")
        state = os.path.join(tmp, "state")
    print("chaos: seed=%d sessions=%d state=%s" % (seed, a.sessions, state), flush=True)
    config = dict(kv.split("=", 1) for kv in a.config)
    summary, violations = Chaos(seed, state, a.p_power, a.p_net, a.heapsize,
                                out=lambda line: print(line, flush=True), progress=50,
                                variant=a.variant, config=config).run(a.sessions)
    for line in violations:
        print("VIOLATION: " + line)
    print(summary, flush=True)
    if tmp is not None and not violations:
        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp is not None:
        print("chaos: state and bench log kept in %s" % tmp)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
