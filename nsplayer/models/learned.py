"""The learned model (``--model learned``, what ``embedded`` means): log-mel features ->
viseme posteriors -> mouth shapes -> ARKit.

A small causal temporal convolution network (trained in ``training/``, shipped as numpy
weights) reads ``features.MelAnalyzer`` rows every 10 ms and gives posteriors over
``VISEMES`` (offline, two such networks, averaged). The network's output for 10 ms frame j
is read once it has seen frame j + ``lookahead`` (1 frame causal, more offline). Posteriors
become the DSP model's mouth shape targets (open, closed, rounded, spread, labiodental,
sibilant, accent), then its attack/release dynamics and ARKit mapping (``mouth``); frame i,
at audio time i / fps, interpolates the two 10 ms states around that time, so no frame is
late.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from nsplayer.framerate import RowResampler
from nsplayer.models.features import MEL_BANDS, MEL_HOP_S, MEL_WINDOW_S, MelAnalyzer
from nsplayer.models.mouth import N_STATE, Dynamics, check_stream, to_channels

VISEMES = (
    "silence",
    "bilabial",  # p b m: lips shut
    "labiodental",  # f v: lower lip to the teeth
    "open",  # a, aI, aU, A:, V: jaw open
    "rounded",  # u, o, w: lips rounded
    "spread",  # i, e, eI: lips spread
    "mid",  # schwa, E, 3: (other vowels): jaw half open
    "sibilant",  # s z S Z tS dZ: teeth together
    "other",  # t d n l r k g N h j T D: tongue consonants, jaw a little open
)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS = "learned_v8.npz"
# Mouth-shape targets per viseme: open, closed, rounded, spread, labiodental, sibilant.
SHAPES = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # silence
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],  # bilabial
        [0.1, 0.0, 0.0, 0.0, 1.0, 0.0],  # labiodental
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # open
        [0.45, 0.0, 1.0, 0.0, 0.0, 0.0],  # rounded
        [0.45, 0.0, 0.0, 1.0, 0.0, 0.0],  # spread
        [0.6, 0.0, 0.0, 0.2, 0.0, 0.0],  # mid
        [0.1, 0.0, 0.0, 0.3, 0.0, 1.0],  # sibilant
        [0.3, 0.0, 0.0, 0.0, 0.0, 0.0],  # other
    ]
)
# Gains on the shape targets (open, closed, rounded, spread, labiodental, sibilant) in
# frames a network hears as speech: a rounded vowel it is half sure of rounds the lips, a
# closure it is 40 % sure of shuts them, and a spread vowel or a labiodental it is 67 %
# sure of spreads them or rolls the lower lip: it hears them less surely than openness.
# Quiet frames keep smaller gains on the lips: where a frame may be silence (a silence
# posterior above QUIET_POSTERIOR) the noise of a pause would move them. Causal only, the
# first ONSET_FRAMES after a pause (PAUSE_FRAMES in a row with a silence posterior above
# PAUSE_POSTERIOR: longer than a stop's closure) get ONSET_GAINS: with 10 ms of look-ahead
# the network reads a sharp vowel onset as a p/b release (a bilabial posterior of 0.4-0.7
# in its first frames), and a closure there held the jaw shut for a frame or two (`live`
# 4-8 ms later at p50); the lips are together at rest anyway. Chosen on the trained-on
# voices and the latency benchmark's onsets (training/MODEL_CARD.md).
SPEECH_GAINS = np.array([1.0, 2.5, 2.0, 1.5, 1.5, 1.0])
QUIET_GAINS = np.array([1.0, 1.5, 2.0, 1.0, 1.0, 1.0])
ONSET_GAINS = np.array([1.0, 0.5, 2.0, 1.0, 1.0, 1.0])
QUIET_POSTERIOR = 0.2
PAUSE_POSTERIOR = 0.5
PAUSE_FRAMES = 15
ONSET_FRAMES = 3
VOWELS = [VISEMES.index(v) for v in ("open", "rounded", "spread", "mid")]
# (attack, release) seconds per shape: the posteriors are already smooth (the network's
# own context), so these are faster than the DSP model's: the jaw and the lips follow them
# within one 10 ms step (at 20-30 ms a short vowel was over before they got there, and the
# jaw answered onsets 4 ms later; model card), in both modes.
TIME_CONSTANTS = (
    (0.010, 0.035),  # open
    (0.008, 0.015),  # closed
    (0.010, 0.050),  # round
    (0.010, 0.050),  # spread
    (0.005, 0.030),  # labiodental
    (0.020, 0.030),  # sibilant
    (0.080, 0.300),  # accent
)


class _Net:
    """Streaming dilated causal 1-D convolutions (numpy); history kept per layer, so the
    output never depends on how the input was chunked."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str) -> None:
        self.mean, self.std = w[prefix + "mean"], w[prefix + "std"]
        self.lookahead = int(w[prefix + "lookahead"])
        self.layers = []
        for i, d in enumerate(w[prefix + "dilations"].tolist()):
            weight = w[f"{prefix}conv{i}.weight"]  # (out, in, k) as torch stores it
            out_ch, in_ch, k = weight.shape
            flat = np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(k * in_ch, out_ch))
            hist = np.zeros(((k - 1) * d, in_ch), np.float32)
            self.layers.append([flat, w[f"{prefix}conv{i}.bias"], k, d, hist, i > 0])
        self.out_w = np.ascontiguousarray(w[prefix + "out.weight"].T)
        self.out_b = w[prefix + "out.bias"]
        self.context = 1 + sum(len(layer[4]) for layer in self.layers)  # frames of memory

    def warm_up(self, row: np.ndarray) -> np.ndarray:
        """Fill the history as if ``row`` (the features of silence) had always come in, so
        that the output does not depend on when the input started; return its output."""
        return self.run(np.repeat(row[None, :], self.context, axis=0))[-1:]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Rows (n, features) -> posteriors (n, len(VISEMES)) for the same input frames."""
        h = ((x - self.mean) / self.std).astype(np.float32)
        n = len(h)
        for layer in self.layers:
            flat, bias, k, d, hist, residual = layer
            buf = np.concatenate([hist, h])
            cols = np.concatenate([buf[m * d : m * d + n] for m in range(k)], axis=1)
            y = np.maximum(cols @ flat + bias, 0.0)
            layer[4] = buf[len(buf) - len(hist) :]
            h = y + h if residual else y
        logits = h @ self.out_w + self.out_b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


class _Nets:
    """A mode's networks: ``mode/`` and any ``mode.K/`` members trained from other seeds
    (v8's offline mode has two), their posteriors averaged: the members err apart on
    voices none was trained on, so their mean is surer where they agree."""

    def __init__(self, w: dict[str, np.ndarray], mode: str) -> None:
        heads = sorted({k.split("/")[0] for k in w if k.split("/")[0].split(".")[0] == mode})
        self.members = [_Net(w, head + "/") for head in heads]
        self.lookahead = self.members[0].lookahead
        if any(net.lookahead != self.lookahead for net in self.members):
            raise ValueError(f"{mode} networks differ in look-ahead")

    def warm_up(self, row: np.ndarray) -> np.ndarray:
        return np.mean([net.warm_up(row) for net in self.members], axis=0)

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.mean([net.run(x) for net in self.members], axis=0)


def load_weights() -> dict[str, np.ndarray]:
    """The shipped weights, as arrays."""
    with np.load(WEIGHTS_DIR / WEIGHTS) as npz:
        return {k: npz[k] for k in npz.files}


_WEIGHTS: dict[str, np.ndarray] | None = None
_BLAS_HELD = False


def _one_blas_thread() -> None:
    """Hold numpy's BLAS to one thread in this process, once. The network's products are a
    few rows by a few hundred columns, every 10-100 ms: OpenBLAS would spread them over
    threads that then spin between calls (a 10 s ``play`` cost 4.6 s of CPU, 1.3 s with one
    thread)."""
    global _BLAS_HELD
    if not _BLAS_HELD:
        threadpool_limits(1, user_api="blas")
        _BLAS_HELD = True


def _weights() -> dict[str, np.ndarray]:
    global _WEIGHTS
    if _WEIGHTS is None:
        _WEIGHTS = load_weights()
    return _WEIGHTS


def targets(post: np.ndarray, mel: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Posteriors (n, VISEMES) and their mel rows -> shape targets (n, N_STATE); ``gains``
    (N_STATE - 1,) or one row of them per frame."""
    post = np.maximum(post - 0.05, 0.0) / 0.95  # a faint posterior is no shape: rest is rest
    shapes = np.minimum(1.0, (post @ SHAPES) * gains)
    loud = 10.0 * np.log10(np.sum(10.0 ** (mel[:, :MEL_BANDS] / 10.0), axis=1) + 1e-12)
    accent = post[:, VOWELS].sum(axis=1) * np.clip((loud - 6.0) / 4.0, 0.0, 1.0)
    return np.concatenate([shapes, accent[:, None]], axis=1)


class LearnedModel:
    """Streaming speech -> 61 ARKit values per frame. See the module docstring."""

    idle_from_frame = None  # it never stops speaking (see FaceModel)

    def __init__(self, sample_rate: int, fps: int = 60, causal: bool = True) -> None:
        check_stream(sample_rate, fps)
        _one_blas_thread()
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        self.causal = causal
        self._net = _Nets(_weights(), "causal" if causal else "offline")
        self._an = MelAnalyzer(self.sample_rate)
        silence = MelAnalyzer(self.sample_rate).push(np.zeros(self._an.nfft))[-1:]
        rest = targets(self._net.warm_up(silence[0]), silence, QUIET_GAINS)
        self._dyn = Dynamics(MEL_HOP_S, TIME_CONSTANTS, causal=False)
        self._dyn.state = rest[0].tolist()  # at rest, as after a long silence
        # Frame i interpolates states floor(t/hop) and the one after: one more hop.
        self.lookahead_s = MEL_WINDOW_S / 2 + (self._net.lookahead + 1) * MEL_HOP_S
        self._frames = RowResampler(1.0 / MEL_HOP_S, self.fps, N_STATE, np.float64)
        self._mel_pending = np.zeros((0, self._an.push(np.zeros(0)).shape[1]), np.float32)
        self._net_out = 0  # network outputs so far (the first `lookahead` are discarded)
        self._silent_run = PAUSE_FRAMES  # 10 ms frames of silence just before: at rest
        self._onset_left = 0  # frames still to get ONSET_GAINS after a pause
        self._samples = 0

    def feed(self, pcm: np.ndarray) -> np.ndarray:
        """Consume mono float32 samples; return the frames now known, shape (n, 61)."""
        x = np.nan_to_num(np.asarray(pcm, np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
        self._samples += len(x)
        return self._process(self._an.push(np.clip(x, -1.0, 1.0)), limit=None)

    def flush(self) -> np.ndarray:
        """End of input: silence after it completes the look-ahead; the total is
        ceil(duration * fps)."""
        total = math.ceil(self._samples * self.fps / self.sample_rate - 1e-9)
        pad_s = MEL_WINDOW_S + (self._net.lookahead + 3) * MEL_HOP_S
        pad = np.zeros(math.ceil(pad_s * self.sample_rate), np.float32)
        return self._process(self._an.push(pad), limit=total)

    def close(self) -> None:
        """Nothing to release: the model is plain arrays."""

    def _process(self, mel: np.ndarray, limit: int | None) -> np.ndarray:
        states = np.zeros((0, N_STATE))
        if len(mel):
            post = self._net.run(mel)
            self._mel_pending = np.concatenate([self._mel_pending, mel])
            skip = max(0, self._net.lookahead - self._net_out)
            self._net_out += len(mel)
            post = post[skip:]
            mel_rows, self._mel_pending = (
                self._mel_pending[: len(post)],
                self._mel_pending[len(post) :],
            )
            states = self._dyn.run(targets(post, mel_rows, self._frame_gains(post)))
        return to_channels(self._frames.push(states, limit))

    def _frame_gains(self, post: np.ndarray) -> np.ndarray:
        """Shape gains per frame: SPEECH_GAINS, QUIET_GAINS or ONSET_GAINS (see there)."""
        gains = np.where((post[:, 0] > QUIET_POSTERIOR)[:, None], QUIET_GAINS, SPEECH_GAINS)
        if self.causal:
            run, left = self._silent_run, self._onset_left
            for i, silent in enumerate((post[:, 0] > PAUSE_POSTERIOR).tolist()):
                if run >= PAUSE_FRAMES:
                    left = ONSET_FRAMES
                if left > 0:
                    gains[i], left = ONSET_GAINS, left - 1
                run = run + 1 if silent else 0
            self._silent_run, self._onset_left = run, left
        return gains
