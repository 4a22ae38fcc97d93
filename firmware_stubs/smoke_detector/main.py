# Wireless photoelectric smoke detector (acme-sd10) reference firmware, MicroPython.
#
# Hardware: smoke chamber on ADC pin PIN_CHAMBER (obscuration %/m = raw * 20 / 65535), battery on ADC pin
# PIN_BATTERY (percent = raw * 100 / 65535), test button on PIN_TEST (1 = pressed), tamper on PIN_TAMPER
# (1 = base removed), chamber fault on PIN_FAULT (1 = fault), sounder on PIN_SOUNDER (output).
# MQTT contract (profile acme-sd10, prefix xqdev/{device_id}): retained state on {prefix}/state
# ({alarm, obscuration, test, tamper, fault}), heartbeat {battery, rssi} on {prefix}/heartbeat, retained
# "online"/"offline" (last will) on {prefix}/status, commands silence / self_test on {prefix}/cmd, answered
# on {prefix}/cmd/result.
#
# Cooperative: setup(cfg) once, then step() every few tens of milliseconds; main() does exactly that.
# mypy: ignore-errors
import machine
import xqlink

try:
    import utime as time
except ImportError:
    import time

PIN_CHAMBER = 32
PIN_BATTERY = 33
PIN_TEST = 0
PIN_TAMPER = 14
PIN_FAULT = 15
PIN_SOUNDER = 2
ALARM_ON = 3.0   # %/m obscuration that raises the alarm
ALARM_OFF = 1.5  # and clears it again (hysteresis)
DEADBAND = 0.5   # report obscuration changes beyond this
SELF_TEST_MS = 3000

S = {}


def setup(cfg):
    S.clear()
    xqlink.init(S, cfg)
    S["chamber"] = machine.ADC(PIN_CHAMBER)
    S["battery"] = machine.ADC(PIN_BATTERY)
    S["test"] = machine.Pin(PIN_TEST, machine.Pin.IN)
    S["tamper"] = machine.Pin(PIN_TAMPER, machine.Pin.IN)
    S["fault"] = machine.Pin(PIN_FAULT, machine.Pin.IN)
    S["sounder"] = machine.Pin(PIN_SOUNDER, machine.Pin.OUT, value=0)
    S["hb_ms"] = int(cfg.get("heartbeat_s", 60) * 1000)
    S["rssi"] = cfg.get("rssi", -70)
    S["alarm"] = False
    S["silenced"] = False
    S["self_test_until"] = None
    S["boot"] = xqlink.now()
    S["sent_obsc"] = None


def obscuration():
    return round(S["chamber"].read_u16() * 20.0 / 65535, 1)


def battery_pct():
    return S["battery"].read_u16() * 100 // 65535


def result(cid, ok, reason=None):
    xqlink.result(S, cid, ok, reason)


def on_command(payload):
    msg = xqlink.parse_command(S, payload)
    if msg is None:
        return
    cid = msg.get("id")
    cmd = msg.get("cmd")
    if cmd == "silence":
        S["silenced"] = True
        result(cid, True, None if S["alarm"] else "not in alarm")
    elif cmd == "self_test":
        if S["alarm"]:
            result(cid, False, "in alarm: self-test refused")
            return
        S["self_test_until"] = time.ticks_add(xqlink.now(), SELF_TEST_MS)
        result(cid, True)
    else:
        result(cid, False, "unknown command " + repr(cmd))


def state():
    testing = S["self_test_until"] is not None or S["test"].value() == 1
    return {"alarm": S["alarm"], "obscuration": obscuration(), "test": testing,
            "tamper": S["tamper"].value() == 1, "fault": S["fault"].value() == 1}


def step():
    now = xqlink.now()
    xqlink.service(S, now, on_command)
    obsc = obscuration()
    if not S["alarm"] and obsc >= ALARM_ON:
        S["alarm"] = True
        S["silenced"] = False
    elif S["alarm"] and obsc <= ALARM_OFF:
        S["alarm"] = False
        S["silenced"] = False
    if S["self_test_until"] is not None and time.ticks_diff(now, S["self_test_until"]) >= 0:
        S["self_test_until"] = None
    testing = S["self_test_until"] is not None or S["test"].value() == 1
    S["sounder"].value(1 if (S["alarm"] and not S["silenced"]) or testing else 0)
    st = state()
    changed = S["sent_state"] is None or S["sent_obsc"] is None
    if not changed:
        for k in ("alarm", "test", "tamper", "fault"):
            if st[k] != S["sent_state"][k]:
                changed = True
        if abs(st["obscuration"] - S["sent_obsc"]) >= DEADBAND:
            changed = True
    if changed and xqlink.send(S, "state", st, True, 1):
        S["sent_state"] = st
        S["sent_obsc"] = st["obscuration"]
    if xqlink.heartbeat_due(S, now):
        xqlink.send(S, "heartbeat", {"battery": battery_pct(), "rssi": S["rssi"]})


def main(cfg):
    xqlink.run(setup, step, cfg)


if __name__ == "__main__":
    main(xqlink.load_config())
