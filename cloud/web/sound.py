"""The alarm tone the console loops until a critical alarm is acknowledged: a two-tone (960 / 770 Hz) WAV
generated here with the standard library, so no binary file and no build step is needed."""

from __future__ import annotations

import io
import math
import struct
import wave
from functools import cache

RATE = 16_000


@cache
def alarm_wav(tones: tuple[tuple[float, float], ...] = ((960.0, 0.35), (770.0, 0.35)), gap_s: float = 0.1) -> bytes:
    """16-bit mono PCM: each (frequency, seconds) tone with 10 ms fades, then ``gap_s`` of silence."""
    frames = bytearray()
    fade = int(RATE * 0.01)
    for freq, secs in tones:
        n = int(RATE * secs)
        for i in range(n):
            env = min(1.0, i / fade, (n - 1 - i) / fade)
            frames += struct.pack("<h", int(0.6 * 32767 * env * math.sin(2 * math.pi * freq * i / RATE)))
    frames += b"\0\0" * int(RATE * gap_s)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return buf.getvalue()
