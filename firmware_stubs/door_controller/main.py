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
import ujson

try:
    import utime as time
except ImportError:
    import time
from umqtt.simple import MQTTClient, MQTTException

PIN_RELAY = 5
PIN_DOOR = 4
PIN_TAMPER = 14
READER_UART = 1
DEFAULT_UNLOCK_S = 5
MAX_QUEUED = 20

S = {}


def _now():
    return time.ticks_ms()


def setup(cfg):
    S.clear()
    S["cfg"] = cfg
    S["prefix"] = "xqdev/" + cfg["device_id"]
    S["relay"] = machine.Pin(PIN_RELAY, machine.Pin.OUT, value=0)
    S["door"] = machine.Pin(PIN_DOOR, machine.Pin.IN)
    S["tamper"] = machine.Pin(PIN_TAMPER, machine.Pin.IN)
    S["reader"] = machine.UART(READER_UART, 9600)
    S["cards"] = cfg.get("cards", [])
    S["salt"] = cfg.get("salt", "xq")
    S["hb_ms"] = int(cfg.get("heartbeat_s", 30) * 1000)
    S["mode"] = "normal"
    S["unlock_until"] = None
    S["boot"] = _now()
    S["last_hb"] = None
    S["client"] = None
    S["retry_at"] = _now()
    S["backoff"] = 500
    S["door_was"] = S["door"].value()
    S["sent_state"] = None
    S["queue"] = []
    S["connects"] = 0


def credential_hash(card):
    h = uhashlib.sha256(S["salt"].encode() + b":" + card.encode())
    return ubinascii.hexlify(h.digest()).decode()[:32]


def locked():
    return S["relay"].value() == 0


def state():
    return {"door_open": S["door"].value() == 1, "locked": locked(), "mode": S["mode"],
            "tamper": S["tamper"].value() == 1}


def _topic(kind):
    return S["prefix"] + "/" + kind


def _send(kind, payload, retain=False, qos=0):
    c = S["client"]
    if c is None:
        if kind == "event" and len(S["queue"]) < MAX_QUEUED:
            S["queue"].append(payload)
        return
    try:
        c.publish(_topic(kind), ujson.dumps(payload), retain, qos)
    except OSError:
        _lost()
        if kind == "event" and len(S["queue"]) < MAX_QUEUED:
            S["queue"].append(payload)


def _lost():
    S["client"] = None
    S["retry_at"] = time.ticks_add(_now(), S["backoff"])
    S["backoff"] = min(S["backoff"] * 2, 30000)


def event(kind, **detail):
    payload = {"type": kind, "ts": time.time()}
    for k in detail:
        payload[k] = detail[k]
    _send("event", payload, False, 1)


def set_lock(unlocked):
    S["relay"].value(1 if unlocked else 0)


def unlock_for(seconds):
    set_lock(True)
    S["unlock_until"] = time.ticks_add(_now(), int(seconds * 1000))
    if S["mode"] == "normal":
        S["mode"] = "unlocked"


def relock():
    S["unlock_until"] = None
    if S["mode"] != "released":
        set_lock(False)
        S["mode"] = "normal"


def result(cid, ok, reason=None):
    _send("cmd/result", {"id": cid, "ok": ok, "reason": reason}, False, 1)


def on_command(payload):
    try:
        msg = ujson.loads(payload)
    except ValueError:
        result(None, False, "malformed JSON")
        return
    if not isinstance(msg, dict):
        result(None, False, "command must be a JSON object")
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


def _on_message(topic, msg):
    if topic.decode() == _topic("cmd"):
        on_command(msg)


def connect():
    cfg = S["cfg"]
    c = MQTTClient(cfg["device_id"], cfg.get("server", "127.0.0.1"), cfg.get("port", 1883),
                   keepalive=cfg.get("keepalive", 30))
    c.set_callback(_on_message)
    c.set_last_will(_topic("status"), "offline", True, 1)
    c.connect()
    c.subscribe(_topic("cmd"), 1)
    S["client"] = c
    S["backoff"] = 500
    S["connects"] += 1
    c.publish(_topic("status"), "online", True, 1)
    S["sent_state"] = None
    S["last_hb"] = None
    queued = S["queue"]
    S["queue"] = []
    for payload in queued:
        _send("event", payload, False, 1)


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
    now = _now()
    if S["client"] is None and time.ticks_diff(now, S["retry_at"]) >= 0:
        try:
            connect()
        except (OSError, MQTTException):
            _lost()
    if S["client"] is not None:
        try:
            S["client"].check_msg()
        except OSError:
            _lost()
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
    if S["client"] is not None and (S["last_hb"] is None or time.ticks_diff(now, S["last_hb"]) >= S["hb_ms"]):
        S["last_hb"] = now
        _send("heartbeat", {"uptime_s": time.ticks_diff(now, S["boot"]) // 1000})


def main(cfg):
    setup(cfg)
    while True:
        step()
        time.sleep_ms(20)


def load_config():
    with open("config.json") as f:
        return ujson.loads(f.read())


if __name__ == "__main__":
    main(load_config())
