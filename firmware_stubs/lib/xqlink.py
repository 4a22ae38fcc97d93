# The device side of the xiaoqu MQTT device contract, shared by every reference firmware, MicroPython.
#
# On a device this file sits in flash next to main.py. It keeps no state of its own: every function takes
# the firmware's state dict S (keys: cfg, prefix, client, retry_at, backoff, connects, sent_state, last_hb),
# so one copy serves any number of simulated devices in one CPython process.
#
# Topics: {prefix}/<kind> with prefix xqdev/{device_id}; retained "online"/"offline" (last will) on
# {prefix}/status; commands on {prefix}/cmd answered on {prefix}/cmd/result {id, ok, reason}.
# mypy: ignore-errors
import ujson

try:
    import utime as time
except ImportError:
    import time
from umqtt.simple import MQTTClient, MQTTException

BACKOFF_START_MS = 500
BACKOFF_MAX_MS = 30000


def now():
    return time.ticks_ms()


def init(S, cfg):
    """The link's part of a fresh state dict."""
    S["cfg"] = cfg
    S["prefix"] = "xqdev/" + cfg["device_id"]
    S["client"] = None
    S["retry_at"] = now()
    S["backoff"] = BACKOFF_START_MS
    S["connects"] = 0
    S["sent_state"] = None
    S["last_hb"] = None


def topic(S, kind):
    return S["prefix"] + "/" + kind


def lost(S):
    """The connection is gone: retry after the current backoff, doubling it up to BACKOFF_MAX_MS."""
    S["client"] = None
    S["retry_at"] = time.ticks_add(now(), S["backoff"])
    S["backoff"] = min(S["backoff"] * 2, BACKOFF_MAX_MS)


def send(S, kind, payload, retain=False, qos=0):
    """Publish JSON on {prefix}/<kind>; False when not connected or the link dropped while sending."""
    c = S["client"]
    if c is None:
        return False
    try:
        c.publish(topic(S, kind), ujson.dumps(payload), retain, qos)
        return True
    except OSError:
        lost(S)
        return False


def result(S, cid, ok, reason=None):
    send(S, "cmd/result", {"id": cid, "ok": ok, "reason": reason}, False, 1)


def parse_command(S, payload):
    """The command as a dict, or None after answering ok=false for a payload that is not one."""
    try:
        msg = ujson.loads(payload)
    except ValueError:
        result(S, None, False, "malformed JSON")
        return None
    if not isinstance(msg, dict):
        result(S, None, False, "command must be a JSON object")
        return None
    return msg


def connect(S, on_command):
    """Connect with the last will set, subscribe to commands, announce "online" (retained)."""
    cfg = S["cfg"]
    c = MQTTClient(cfg["device_id"], cfg.get("server", "127.0.0.1"), cfg.get("port", 1883),
                   keepalive=cfg.get("keepalive", 30))

    def on_message(t, msg):
        if t.decode() == topic(S, "cmd"):
            on_command(msg)

    c.set_callback(on_message)
    c.set_last_will(topic(S, "status"), "offline", True, 1)
    c.connect()
    c.subscribe(topic(S, "cmd"), 1)
    S["client"] = c
    S["backoff"] = BACKOFF_START_MS
    S["connects"] += 1
    c.publish(topic(S, "status"), "online", True, 1)
    S["sent_state"] = None
    S["last_hb"] = None


def service(S, t, on_command):
    """(Re)connect when due, then take any pending command; True when connected afterwards."""
    if S["client"] is None and time.ticks_diff(t, S["retry_at"]) >= 0:
        try:
            connect(S, on_command)
        except (OSError, MQTTException):
            lost(S)
    if S["client"] is not None:
        try:
            S["client"].check_msg()
        except OSError:
            lost(S)
    return S["client"] is not None


def heartbeat_due(S, t):
    """True (and the heartbeat timer restarted) when a heartbeat should be sent now."""
    if S["client"] is None:
        return False
    if S["last_hb"] is not None and time.ticks_diff(t, S["last_hb"]) < S["hb_ms"]:
        return False
    S["last_hb"] = t
    return True


def run(setup, step, cfg):
    """The firmware's main loop: setup once, then step every 20 ms."""
    setup(cfg)
    while True:
        step()
        time.sleep_ms(20)


def load_config():
    with open("config.json") as f:
        return ujson.loads(f.read())
