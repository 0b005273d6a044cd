"""The DSP audio-to-face model (``--model dsp``): speech features -> mouth shapes -> ARKit.

Pipeline per analysis frame (``OVERSAMPLE`` frames per output frame):

1. ``features.Analyzer``: level, band levels, voicing, pitch, F1/F2 (LPC), centroid.
2. ``_LevelTracker``: an adaptive noise floor and speech level, so quiet and loud
   recordings animate alike and steady background noise keeps the mouth at rest; per-band
   noise floors are subtracted so weak consonants keep their shape in noise; F2 is
   normalized by the speaker's running mean, so voices of any size map alike.
3. ``_targets``: how strongly each mouth shape is indicated — open (F1 and loudness),
   closed (a gap or a nasal/voiced murmur inside speech: p/b/m), rounded (low F2; "sh"),
   spread (high F2), labiodental (weak, hissy frication: f/v), sibilant (loud hiss: s/z).
   Causal mode looks at most 30 ms ahead, spent on closing the lips in time; offline mode
   also sees ``OFFLINE_LOOKAHEAD_S`` ahead, so lips close and round a little before the
   sound, as people do.
4. ``mouth.Dynamics``: per-shape asymmetric attack/release (closures snap shut, openings
   ease), which is what keeps fast speech from flapping.
5. ``mouth.to_channels``: shapes -> the 61 Live Link values; pitch and loudness accents
   lift the brows and nod the head slightly.
"""

from __future__ import annotations

import math

import numpy as np

from nsplayer.models.base import N_SHAPES
from nsplayer.models.features import WINDOW_S, Analyzer, Features
from nsplayer.models.mouth import CLOSED, N_STATE, Dynamics, check_stream, to_channels

OVERSAMPLE = 2  # analysis frames per output frame: closures of 30 ms need ~8 ms steps
CONTEXT_S = 0.15  # how far back (and, offline, ahead) "inside speech" and level drops look
GAP_S = 0.06  # a silent gap this close to speech is a stop closure: lips shut
OFFLINE_LOOKAHEAD_S = 0.1

# How far ahead each shape's target is anticipated (max over the next frames): lips close
# and round before the sound they shape. Causal mode spends its budget on closures only,
# so its total look-ahead (half a window plus these hops) stays within CAUSAL_MAX_S.
ANTICIPATE_S = (0.0, 0.017, 0.05, 0.025, 0.017, 0.0, 0.0)
CAUSAL_MAX_S = 0.030
# (attack, release) time constants in seconds, per shape.
TIME_CONSTANTS = (
    (0.025, 0.045),  # open
    (0.010, 0.020),  # closed: crisp
    (0.050, 0.080),  # round: lips move slowly
    (0.040, 0.070),  # spread
    (0.020, 0.040),  # labiodental
    (0.025, 0.040),  # sibilant
    (0.080, 0.300),  # accent (brows, head)
)


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below lo, 1 above hi, linear between (hi < lo ramps downwards)."""
    return np.minimum(np.maximum((x - lo) * (1.0 / (hi - lo)), 0.0), 1.0)


class _LevelTracker:
    """Noise floor (slow rise, instant fall) and speech level (fast rise, slow fall), in dB.

    A sequential recursion, so it loops over frames — with plain floats, ~1 µs a frame.
    """

    def __init__(self, hop_s: float) -> None:
        self.floor = math.nan
        self.speech = math.nan
        self.pitch_ref = 120.0  # running mean voiced pitch, Hz
        self.f2_ref = 1500.0  # running mean F2 of loud voiced frames: the speaker's vowel space
        self.rise = 3.0 * hop_s  # floor creeps up 3 dB/s during sound
        self.decay = 1.5 * hop_s  # speech level forgets 1.5 dB/s
        self.pitch_a = 1.0 - math.exp(-hop_s / 2.0)
        self.f2_a = 1.0 - math.exp(-hop_s / 1.5)
        self.band_floors = [math.nan, math.nan, math.nan]  # low, high, air

    def run(self, f: Features) -> tuple[np.ndarray, ...]:
        """Per frame: level relative to speech (dB), speech gate 0..1, pitch accent (st),
        F2 relative to the speaker's mean."""
        n = len(f)
        rel, gate, accent, f2n = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        floors = np.empty(n)
        floor, speech, pref, f2ref = self.floor, self.speech, self.pitch_ref, self.f2_ref
        rows = zip(f.level_db.tolist(), f.pitch_hz.tolist(), f.f2.tolist(), strict=True)
        for i, (d, hz, f2) in enumerate(rows):
            d = max(d, -120.0)
            if math.isnan(floor):
                floor, speech = d, d + 15.0
            floor = d if d < floor else floor + self.rise
            if d > speech and d > floor + 12.0:
                speech += 0.25 * (d - speech)
            else:
                speech = max(speech - self.decay, floor + 15.0)
            thresh = max(floor + 5.0, speech - 35.0, -85.0)
            g = min(max((d - thresh) / 5.0, 0.0), 1.0)
            st = 0.0
            if hz > 0.0 and g > 0.5:
                st = 12.0 * math.log2(hz / pref)
                pref *= 2.0 ** (self.pitch_a * st / 12.0)
                if d > speech - 12.0:
                    f2ref += self.f2_a * (f2 - f2ref)
            rel[i], gate[i], accent[i], f2n[i] = d - speech, g, st, f2 / f2ref
            floors[i] = floor
        self.floor, self.speech, self.pitch_ref, self.f2_ref = floor, speech, pref, f2ref
        return rel, gate, accent, f2n, floors

    def denoised(self, f: Features, floor_db: np.ndarray) -> dict[str, np.ndarray]:
        """Level and band levels with the noise floor's power removed (spectral subtraction),
        so weak consonants keep their spectral shape in steady background noise."""
        out = {"level": _subtract(f.level_db, floor_db)}
        bands = (f.low_db, f.high_db, f.air_db)
        for k, (name, band) in enumerate(zip(("low", "high", "air"), bands, strict=True)):
            floors, self.band_floors[k] = _min_follow(band, self.band_floors[k], self.rise)
            out[name] = _subtract(band, floors)
            if name == "high":  # hiss well above its band's floor is speech, even when low
                out["hiss_gate"] = _ramp(band - floors, 6.0, 12.0)  # noise masks the level
        return out


def _min_follow(x: np.ndarray, floor: float, rise: float) -> tuple[np.ndarray, float]:
    """Noise floor track of a dB series: instant fall, slow rise; returns it and the state."""
    out = np.empty(len(x))
    for i, d in enumerate(x.tolist()):
        d = max(d, -120.0)
        floor = d if (math.isnan(floor) or d < floor) else floor + rise
        out[i] = floor
    return out, floor


def _subtract(db: np.ndarray, floor_db: np.ndarray) -> np.ndarray:
    """dB of the power above the floor."""
    power = 10.0 ** (db / 10.0) - 10.0 ** (floor_db / 10.0)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


class DspModel:
    """Streaming speech -> 61 ARKit values per frame. See the module docstring."""

    idle_from_frame = None  # it never stops speaking (see FaceModel)

    def __init__(self, sample_rate: int, fps: int = 60, causal: bool = True) -> None:
        check_stream(sample_rate, fps)
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        self.causal = causal
        self.hop_s = 1.0 / (self.fps * OVERSAMPLE)
        if causal:  # the one frame of look-ahead goes to anticipating closures
            hops = max(1, int((CAUSAL_MAX_S - WINDOW_S / 2) / self.hop_s))
            self._fwd, self._anticipate = 0, np.zeros(N_STATE, int)
            self._anticipate[CLOSED] = hops
        else:
            self._fwd = math.ceil(OFFLINE_LOOKAHEAD_S / self.hop_s / 2)
            self._anticipate = np.round(np.array(ANTICIPATE_S) / self.hop_s).astype(int)
            self._anticipate = np.minimum(self._anticipate, self._fwd)
        self._ahead = self._fwd + int(self._anticipate.max())
        self._back = math.ceil(CONTEXT_S / self.hop_s)
        self._gap_back = math.ceil(GAP_S / self.hop_s)
        self.lookahead_s = WINDOW_S / 2 + self._ahead * self.hop_s
        self._an = Analyzer(self.sample_rate, self.hop_s)
        self._levels = _LevelTracker(self.hop_s)
        self._dyn = Dynamics(self.hop_s, TIME_CONSTANTS, causal)
        self._hist: dict[str, np.ndarray] = {}  # per-frame arrays: _back past + pending frames
        self._hist_start = -self._back  # analysis index of the first history entry
        self._done = 0  # analysis frames whose shapes are computed
        self._samples = 0
        self._emitted = 0
        self._closed = False
        self._pad_len = round((WINDOW_S + (self._ahead + 2) * self.hop_s) * self.sample_rate) + 1
        self._recent = np.zeros(0, np.float32)  # the last _pad_len samples

    # --- streaming API ------------------------------------------------------------------------

    def feed(self, pcm: np.ndarray) -> np.ndarray:
        """Consume mono float32 samples; return the frames now known, shape (n, 61)."""
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        self._samples += len(x)
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        self._recent = np.concatenate([self._recent, x])[-self._pad_len :]
        return self._process(self._an.push(x), limit=None)

    def flush(self) -> np.ndarray:
        """End of input: finish the look-ahead on the audio's mirror image (a step to silence
        would look like a stop closure or a click after noisy or DC-offset audio); the total
        is ceil(duration * fps)."""
        total = math.ceil(self._samples * self.fps / self.sample_rate - 1e-9)
        tail = np.zeros(self._pad_len, np.float32)
        tail[: len(self._recent)] = self._recent[::-1]
        return self._process(self._an.push(tail), limit=total)

    def close(self) -> None:
        self._closed = True

    # --- internals ----------------------------------------------------------------------------

    def _process(self, f: Features, limit: int | None) -> np.ndarray:
        if len(f):
            *tracked, floors = self._levels.run(f)
            self._append(f, self._levels.denoised(f, floors), *tracked)
        n_avail = self._hist_start + len(self._hist.get("gate", ()))
        ready = n_avail - self._ahead  # frames j < ready have their look-ahead
        if ready <= self._done:
            return np.zeros((0, N_SHAPES), np.float32)
        ext = self._targets(self._done, ready + int(self._anticipate.max()))
        targets = _anticipate(ext, self._anticipate, ready - self._done)
        states = self._dyn.run(targets)
        first = self._done
        self._done = ready
        self._trim()
        # Output frame i is analysis frame i * OVERSAMPLE.
        idx = np.arange(-(-first // OVERSAMPLE) * OVERSAMPLE, ready, OVERSAMPLE) - first
        rows = to_channels(states[idx])
        if limit is not None:
            rows = rows[: max(0, limit - self._emitted)]
        self._emitted += len(rows)
        return rows

    def _append(self, f: Features, clean: dict[str, np.ndarray], *tracked: np.ndarray) -> None:
        rel, gate, accent, f2n = tracked
        gate = np.maximum(gate, clean["hiss_gate"] * (rel > -45.0))
        level = clean["level"]
        new = {
            "rel": rel, "gate": gate, "accent": accent, "f2n": f2n, "level": level,
            "low": clean["low"] - level, "high": clean["high"] - level,
            "air": clean["air"] - level, "voicing": f.voicing, "f1": f.f1, "f2": f.f2,
            "centroid": f.centroid,
        }  # fmt: skip
        if not self._hist:  # history before frame 0 is silence
            fill = {"level": -120.0, "low": 0.0, "high": -60.0, "air": -60.0, "f1": 500.0,
                    "f2": 1500.0, "f2n": 1.0, "rel": -60.0}  # fmt: skip
            self._hist = {k: np.full(self._back, fill.get(k, 0.0)) for k in new}
        self._hist = {k: np.concatenate([self._hist[k], v]) for k, v in new.items()}

    def _trim(self) -> None:
        keep_from = self._done - self._back
        drop = keep_from - self._hist_start
        if drop > 0:
            self._hist = {k: v[drop:] for k, v in self._hist.items()}
            self._hist_start = keep_from

    def _targets(self, start: int, stop: int) -> np.ndarray:
        """Shape targets (n, N_STATE) for analysis frames start..stop-1."""
        h = self._hist
        a, b = start - self._hist_start, stop - self._hist_start
        cur = {k: v[a:b] for k, v in h.items()}
        fwd = self._fwd
        win = self._back + 1 + fwd
        # Sliding windows over [j - _back, j + fwd] for context and level drops.
        lo = a - self._back
        # Voiced speech nearby makes a gap a closure; noise bursts (unvoiced) do not.
        voiced = h["gate"][lo : b + fwd] * _ramp(h["voicing"][lo : b + fwd], 0.6, 0.8)
        gate_w = np.lib.stride_tricks.sliding_window_view(voiced, win)
        level_w = np.lib.stride_tricks.sliding_window_view(h["level"][lo : b + fwd], win)
        gap_w = gate_w[:, self._back - self._gap_back :]
        speech_near = gap_w[:, : self._gap_back].max(axis=1)
        if fwd:  # offline: a gap is a closure only with speech on both sides
            speech_near = np.minimum(speech_near, gap_w[:, self._gap_back + 1 :].max(axis=1))
        drop = cur["level"] - level_w.max(axis=1)  # dB below the loudest nearby frame
        drop = np.minimum(drop, cur["rel"] + 4.0)  # or well below the speech level (onsets)

        g, v = cur["gate"], _ramp(cur["voicing"], 0.5, 0.75)
        loud = _ramp(cur["rel"], -30.0, -10.0)
        f1 = cur["f1"]
        frication = _ramp(cur["high"] - cur["low"], -3.0, 6.0) * (1.0 - v)  # hiss, no voice bar
        sibilant = (
            g * _ramp(cur["air"], -14.0, -6.0) * _ramp(-drop, 20.0, 15.0)
        )  # s, z, sh: loud hiss
        sh = g * frication * _ramp(cur["centroid"], 5000.0, 4200.0) * _ramp(cur["rel"], -22, -12)
        # f/v against m/b/n: both are weak and low-heavy, but the labiodental's frication
        # keeps more energy above 2.5 and 4 kHz, and it is weaker still (dB sum).
        hissy = _ramp((cur["air"] + 25.0) + (cur["high"] + 21.0) + (-drop - 12.0), 4.0, 12.0)
        labio = g * _ramp(-drop, 9.0, 14.0) * hissy * (1.0 - sibilant)
        murmur = v * _ramp(cur["low"], -7.0, -3.0) * _ramp(-drop, 6.0, 10.0) * (1.0 - hissy)
        gap = (1.0 - g) * speech_near
        closed = np.maximum(gap, murmur * g) * (1.0 - labio)

        vowel = g * v * (1.0 - closed)
        open_ = vowel * loud * (0.25 + 0.75 * _ramp(f1, 300.0, 650.0))
        f2n = cur["f2n"]
        round_ = vowel * _ramp(f2n, 1.1, 0.85) * _ramp(f1, 750.0, 550.0)
        round_ = np.maximum(round_, sh)
        spread = vowel * _ramp(f2n, 1.1, 1.3)
        accent = g * v * _ramp(cur["accent"], 1.0, 4.0)

        return np.stack([open_, closed, round_, spread, labio, sibilant, accent], axis=1)


def _anticipate(t: np.ndarray, frames: np.ndarray, n: int) -> np.ndarray:
    """First n rows of t, each shape the max of its target over its next ``frames`` rows."""
    out = t[:n].copy()
    for k, m in enumerate(frames.tolist()):
        for d in range(1, m + 1):
            np.maximum(out[:, k], t[d : d + n, k], out=out[:, k])
    return out
