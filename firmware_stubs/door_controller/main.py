# Door-access controller (acme-dc100) reference firmware, MicroPython.
#
# Hardware: lock relay on PIN_RELAY (1 = energised = unlocked), door contact on PIN_DOOR (1 = open),
# tamper switch on PIN_TAMPER (1 = opened), card reader on UART READER_UART (one card number per line).
# MQTT contract (profile acme-dc100, prefix xqdev/{device_id}): retained state on {prefix}/state, events
# on {prefix}/event (credentials only as salted hashes), heartbeat on {prefix}/heartbeat, retained
# "online"/"offline" (last will) on {prefix}/status, commands on {prefix}/cmd answered on {prefix}/cmd/result.
#
# Cooperative: setup(cfg) once, then step() every few tens of milliseconds; main() does exactly that.
# mypy: ignore-errors
import machine
import ubinascii
import uhashlib
import xqlink

try:
    import utime as time
except ImportError:
    import time

PIN_RELAY = 5
PIN_DOOR = 4
PIN_TAMPER = 14
READER_UART = 1
DEFAULT_UNLOCK_S = 5
MAX_QUEUED = 20

S = {}


def setup(cfg):
    S.clear()
    xqlink.init(S, cfg)
    S["relay"] = machine.Pin(PIN_RELAY, machine.Pin.OUT, value=0)
    S["door"] = machine.Pin(PIN_DOOR, machine.Pin.IN)
    S["tamper"] = machine.Pin(PIN_TAMPER, machine.Pin.IN)
    S["reader"] = machine.UART(READER_UART, 9600)
    S["cards"] = cfg.get("cards", [])
    S["salt"] = cfg.get("salt", "xq")
    S["hb_ms"] = int(cfg.get("heartbeat_s", 30) * 1000)
    S["mode"] = "normal"
    S["unlock_until"] = None
    S["boot"] = xqlink.now()
    S["door_was"] = S["door"].value()
    S["queue"] = []


def credential_hash(card):
    h = uhashlib.sha256(S["salt"].encode() + b":" + card.encode())
    return ubinascii.hexlify(h.digest()).decode()[:32]


def locked():
    return S["relay"].value() == 0


def state():
    return {"door_open": S["door"].value() == 1, "locked": locked(), "mode": S["mode"],
            "tamper": S["tamper"].value() == 1}


def _send(kind, payload, retain=False, qos=0):
    """Events are kept (up to MAX_QUEUED) while the link is down and sent on the next connect."""
    if not xqlink.send(S, kind, payload, retain, qos) and kind == "event" and len(S["queue"]) < MAX_QUEUED:
        S["queue"].append(payload)


def event(kind, **detail):
    payload = {"type": kind, "ts": time.time()}
    for k in detail:
        payload[k] = detail[k]
    _send("event", payload, False, 1)


def set_lock(unlocked):
    S["relay"].value(1 if unlocked else 0)


def unlock_for(seconds):
    set_lock(True)
    S["unlock_until"] = time.ticks_add(xqlink.now(), int(seconds * 1000))
    if S["mode"] == "normal":
        S["mode"] = "unlocked"


def relock():
    S["unlock_until"] = None
    if S["mode"] != "released":
        set_lock(False)
        S["mode"] = "normal"


def result(cid, ok, reason=None):
    xqlink.result(S, cid, ok, reason)


def on_command(payload):
    msg = xqlink.parse_command(S, payload)
    if msg is None:
        return
    cid = msg.get("id")
    cmd = msg.get("cmd")
    if cmd == "unlock":
        d = msg.get("duration_s", DEFAULT_UNLOCK_S)
        if not isinstance(d, int) or isinstance(d, bool) or d < 1 or d > 600:
            result(cid, False, "duration_s must be an integer 1..600")
            return
        if S["mode"] == "released":
            result(cid, True, "already released")
            return
        unlock_for(d)
        result(cid, True)
    elif cmd == "lock":
        if S["mode"] == "released":
            result(cid, False, "doors are released (fire): send restore first")
            return
        relock()
        result(cid, True)
    elif cmd == "release_all":
        S["mode"] = "released"
        S["unlock_until"] = None
        set_lock(True)
        result(cid, True)
    elif cmd == "restore":
        S["mode"] = "normal"
        relock()
        result(cid, True)
    else:
        result(cid, False, "unknown command " + repr(cmd))


def read_reader():
    uart = S["reader"]
    while uart.any():
        line = uart.readline()
        if not line:
            return
        card = line.decode().strip()
        if not card:
            continue
        h = credential_hash(card)
        if card in S["cards"]:
            unlock_for(DEFAULT_UNLOCK_S)
            event("access_granted", credential_hash=h, method="card")
        else:
            event("access_denied", credential_hash=h, method="card", reason="unknown_card")


def step():
    now = xqlink.now()
    if xqlink.service(S, now, on_command) and S["queue"]:
        queued, S["queue"] = S["queue"], []
        for payload in queued:
            _send("event", payload, False, 1)
    read_reader()
    if S["unlock_until"] is not None and time.ticks_diff(now, S["unlock_until"]) >= 0:
        relock()
    door = S["door"].value()
    if door != S["door_was"]:
        S["door_was"] = door
        if door == 1 and locked():
            event("forced_open")
    st = state()
    if st != S["sent_state"] and S["client"] is not None:
        _send("state", st, True, 1)
        if S["client"] is not None:
            S["sent_state"] = st
    if xqlink.heartbeat_due(S, now):
        _send("heartbeat", {"uptime_s": time.ticks_diff(now, S["boot"]) // 1000})


def main(cfg):
    xqlink.run(setup, step, cfg)


if __name__ == "__main__":
    main(xqlink.load_config())
