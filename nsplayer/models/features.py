"""Short-time speech features for the embedded model, numpy only, any sample rate.

One FFT per analysis frame feeds everything, so nothing is resampled: level and band
energies come from the power spectrum, and so do autocorrelations. LPC (hence formants)
uses the autocorrelation of the 0–4 kHz band at 8 kHz lag spacing, which is exactly the
analysis a resampler to 8 kHz would allow, so 8 kHz telephone audio and 48 kHz studio audio
give the same formants. Voicing and pitch use the 0–2 kHz band's autocorrelation over the
pitch lags. All of it is vectorized over a batch of frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_S = 0.025  # analysis window: resolves F1 and two pitch periods of most voices
LPC_RATE = 8000.0  # formant analysis band 0..LPC_RATE/2
LPC_ORDER = 10  # 4 formants + spectral tilt at 8 kHz
PITCH_LAGS_S = np.arange(0.0025, 0.0125, 0.00025)  # 80..400 Hz
GRID_HZ = np.arange(0.0, 3200.0, 40.0)  # where the LPC envelope is searched for F1, F2
BANDS_HZ = {"low": (60.0, 300.0), "high": (2500.0, 8000.0), "air": (4000.0, 8000.0)}
EPS = 1e-12


@dataclass
class Features:
    """Per analysis frame (arrays of equal length)."""

    level_db: np.ndarray  # mean-square level, dBFS
    low_db: np.ndarray  # band levels, dBFS: voice bar and nasal murmur live below 300 Hz
    high_db: np.ndarray  # above 2.5 kHz: frication
    air_db: np.ndarray  # above 4 kHz (2.4 kHz for narrowband audio): sibilants, f/v/th
    voicing: np.ndarray  # peak normalized autocorrelation over pitch lags, ~0..1
    pitch_hz: np.ndarray  # 0 where unvoiced
    f1: np.ndarray  # Hz
    f2: np.ndarray  # Hz
    centroid: np.ndarray  # spectral centroid up to 8 kHz, Hz

    def __len__(self) -> int:
        return len(self.level_db)


class Framer:
    """Cuts a sample stream into analysis frames at a fixed hop, whatever the chunk sizes.

    Frame j is centred on sample round(j * hop_s * sample_rate) (samples before 0 are
    zeros); it is returned once the audio up to half a window past its centre is known.
    """

    def __init__(self, sample_rate: int, hop_s: float, n_win: int) -> None:
        self.sample_rate = sample_rate
        self.hop_s = hop_s
        self.n_win = n_win
        self.half = n_win // 2
        self._buf = np.zeros(self.half, np.float32)  # leading zeros: frame 0 is centred on 0
        self._buf_start = -self.half  # absolute sample index of _buf[0]
        self.frames_done = 0

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Append samples; return every frame that became complete, shape (n, n_win)."""
        self._buf = np.concatenate([self._buf, np.asarray(pcm, np.float32)])
        end = self._buf_start + len(self._buf)  # absolute index one past the last sample
        j0 = self.frames_done
        step = self.hop_s * self.sample_rate
        j = j0 + max(0, int((end - self.n_win + self.half) / step) + 2 - j0)
        centres = np.round(np.arange(j0, j) * step).astype(np.int64)
        centres = centres[centres - self.half + self.n_win <= end]
        if len(centres) == 0:
            return np.zeros((0, self.n_win), np.float32)
        j = j0 + len(centres)
        starts = centres - self.half - self._buf_start
        frames = self._buf[starts[:, None] + np.arange(self.n_win)[None, :]]
        self.frames_done = j
        next_start = round(j * step) - self.half
        drop = max(0, next_start - self._buf_start)
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return frames


class Analyzer:
    """Frames a sample stream at a fixed hop (``Framer``) and computes Features per frame."""

    def __init__(self, sample_rate: int, hop_s: float) -> None:
        self.sample_rate = sample_rate
        self.hop_s = hop_s
        self.n_win = max(16, round(WINDOW_S * sample_rate))
        max_lag = int(np.ceil(PITCH_LAGS_S[-1] * sample_rate))
        self.nfft = 1 << int(np.ceil(np.log2(self.n_win + max_lag)))  # linear autocorr
        self.window = np.hanning(self.n_win).astype(np.float64)
        self._setup_spectral()
        self._framer = Framer(sample_rate, hop_s, self.n_win)

    def _setup_spectral(self) -> None:
        sr, nfft = self.sample_rate, self.nfft
        f = np.fft.rfftfreq(nfft, 1.0 / sr)
        ms_norm = 2.0 / (nfft * np.sum(self.window**2))  # power spectrum -> mean square
        self.freqs = f
        total = (f >= 60.0) & (f < min(8000.0, sr / 2))
        cols = [total * ms_norm, np.where(total, f, 0.0) * ms_norm]  # level, centroid numerator
        for lo, hi in BANDS_HZ.values():
            lo = min(lo, 0.6 * sr / 2)  # narrowband audio still gets an upper band
            cols.append(((f >= lo) & (f < min(hi, sr / 2))) * ms_norm)
        self.n_used = int(np.sum(f <= min(8000.0, sr / 2)))  # no feature looks above 8 kHz
        self.band_matrix = np.stack(cols, axis=1)[: self.n_used]
        lpc_bins = f <= min(LPC_RATE / 2, sr / 2)
        self.n_lpc = int(lpc_bins.sum())  # bins above are never used by LPC or pitch
        pre = 1.0 + 0.9**2 - 2 * 0.9 * np.cos(2 * np.pi * f / sr)  # pre-emphasis for LPC
        lags = np.arange(LPC_ORDER + 1)
        lag_win = np.exp(-0.5 * (2 * np.pi * 60.0 * lags / LPC_RATE) ** 2)  # 60 Hz bandwidth
        self.lpc_cos = (
            (pre[:, None] * np.cos(2 * np.pi * f[:, None] * lags[None, :] / LPC_RATE))
            * lag_win[None, :]
        )[: self.n_lpc]
        pitch_bins = (f >= 60.0) & (f <= min(2000.0, sr / 2))
        self.pitch_cos = (
            np.cos(2 * np.pi * f[:, None] * PITCH_LAGS_S[None, :]) * pitch_bins[:, None]
        )[: self.n_lpc]
        self.n_pitch = int(np.sum(f <= min(2000.0, sr / 2)))
        pitch_r0 = pitch_bins[: self.n_lpc].astype(np.float64)[:, None]
        # The pitch columns tilt the spectrum up by f^2 (see _pitch); all columns share one
        # pass over the low band: LPC lags, pitch lags, pitch energy.
        tilt = (f[: self.n_lpc, None] / 1000.0) ** 2 * (np.arange(self.n_lpc) < self.n_pitch)[
            :, None
        ]
        pitch_cols = np.concatenate([self.pitch_cos, pitch_r0], axis=1) * tilt
        self.low_matrix = np.concatenate([self.lpc_cos, pitch_cols], axis=1)
        # Normalize the autocorrelation by the window's own, so voicing does not fall with lag.
        w = self.window
        wac = np.array(
            [np.dot(w[: len(w) - k], w[k:]) for k in np.round(PITCH_LAGS_S * sr).astype(int)]
        )
        self.pitch_wnorm = np.maximum(wac / np.dot(w, w), 0.3)  # not amplify noise at long lags
        phase = 2 * np.pi * GRID_HZ[None, :] * lags[:, None] / LPC_RATE
        self.env_cos, self.env_sin = np.cos(phase), np.sin(phase)

    def push(self, pcm: np.ndarray) -> Features:
        """Append samples; return the features of every frame that became complete."""
        frames = self._framer.push(pcm)
        return self._analyse(frames) if len(frames) else _empty()

    def _analyse(self, frames: np.ndarray) -> Features:
        x = frames * self.window  # float64: its FFT is faster here than float32's
        x -= frames.mean(axis=1, keepdims=True) * self.window  # DC offset
        spec = np.fft.rfft(x, self.nfft, axis=1)
        spec = spec[:, : self.n_used]
        p = spec.real**2
        p += spec.imag**2
        bands = p @ self.band_matrix
        db = 10.0 * np.log10(bands + EPS)
        centroid = np.minimum(bands[:, 1] / (bands[:, 0] + EPS), 8000.0)
        low = p[:, : self.n_lpc] @ self.low_matrix
        voicing, pitch = self._pitch(low[:, LPC_ORDER + 1 :])
        f1, f2 = self._formants(low[:, : LPC_ORDER + 1])
        return Features(db[:, 0], db[:, 2], db[:, 3], db[:, 4], voicing, pitch, f1, f2, centroid)

    def _pitch(self, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # rr: autocorrelation over the pitch lags, then lag 0, of the 60 Hz-2 kHz spectrum
        # tilted up by f^2: rumble and fan noise (energy falling like 1/f^2) become white,
        # so their autocorrelation, otherwise high at every lag, scores no voicing; a
        # voice's harmonics still line up at its period.
        r = rr[:, :-1] / (rr[:, -1:] + EPS) / self.pitch_wnorm
        best = np.argmax(r, axis=1)
        voicing = np.clip(r[np.arange(len(r)), best], 0.0, 1.0)
        pitch = np.where(voicing > 0.5, 1.0 / PITCH_LAGS_S[best], 0.0)
        return voicing, pitch

    def _formants(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = r.copy()
        r[:, 0] = r[:, 0] * 1.0001 + EPS  # white-noise floor keeps Levinson stable
        a = levinson(r, LPC_ORDER)
        # Peaks of the LPC envelope 1/|A|^2 are the minima of |A|^2: no log needed.
        env = -((a @ self.env_cos) ** 2 + (a @ self.env_sin) ** 2)
        return pick_formants(env)


def levinson(r: np.ndarray, order: int) -> np.ndarray:
    """LPC coefficients (n, order+1), a[:,0] = 1, for a batch of autocorrelations."""
    n = r.shape[0]
    a = np.zeros((n, order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        acc = r[:, i] + np.einsum("nj,nj->n", a[:, 1:i], r[:, i - 1 : 0 : -1])
        k = -acc / np.maximum(err, EPS)
        k = np.clip(k, -0.9999, 0.9999)
        prev = a.copy()
        a[:, 1 : i + 1] += k[:, None] * prev[:, i - 1 :: -1][:, :i]
        err = err * (1.0 - k * k)
    return a


def pick_formants(env: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and F2 (Hz): the first envelope peaks in their usual ranges, else the maxima there."""
    peaks = np.zeros_like(env, dtype=bool)
    peaks[:, 1:-1] = (env[:, 1:-1] > env[:, :-2]) & (env[:, 1:-1] >= env[:, 2:])
    f1 = _first_peak(env, peaks, GRID_HZ >= 200.0, GRID_HZ <= 1100.0)
    lo2 = np.maximum(f1 + 250.0, 650.0)
    in2 = (GRID_HZ[None, :] >= lo2[:, None]) & (GRID_HZ[None, :] <= 3000.0)
    f2 = _first_peak(env, peaks, in2, True)
    return f1, f2


def _first_peak(env: np.ndarray, peaks: np.ndarray, lo, hi) -> np.ndarray:
    rng = np.broadcast_to(lo & hi, env.shape)
    cand = peaks & rng
    has = cand.any(axis=1)
    first = np.argmax(cand, axis=1)
    fallback = np.argmax(np.where(rng, env, -np.inf), axis=1)
    k = np.clip(np.where(has, first, fallback), 1, len(GRID_HZ) - 2)
    rows = np.arange(len(env))
    left, mid, right = env[rows, k - 1], env[rows, k], env[rows, k + 1]
    curve = left - 2.0 * mid + right  # parabolic interpolation between grid points
    shift = np.where(curve < 0.0, 0.5 * (left - right) / np.minimum(curve, -EPS), 0.0)
    return GRID_HZ[k] + np.clip(shift, -0.5, 0.5) * (GRID_HZ[1] - GRID_HZ[0])


def _empty() -> Features:
    z = np.zeros(0)
    return Features(z, z, z, z, z, z, z, z, z)


MEL_WINDOW_S = 0.020  # the learned model's window: half of it is look-ahead, so keep it short
MEL_HOP_S = 0.010
MEL_BANDS = 40
MEL_RANGE_HZ = (60.0, 7600.0)  # bands above a narrowband input's Nyquist read the floor
MEL_FLOOR_DB = -100.0
PEAK_DECAY_DB_S = 4.0  # how fast the tracked speech peak forgets a loud passage
PEAK_MIN_DB = -80.0  # the peak never falls below this: silence always looks the same
REL_FLOOR_DB = -70.0
SPEAKER_S = 1.5  # memory of the speaker's long-term spectrum
SPEECH_DB = 20.0  # frames within this of the peak are speech, for that spectrum


N_MEL_FEATURES = 2 * MEL_BANDS + 1


def mel_matrix(freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    """Triangular mel filters (bins, MEL_BANDS), unit peak; filters past Nyquist are empty."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(*mel(MEL_RANGE_HZ), MEL_BANDS + 2) / 2595.0) - 1.0)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    f = freqs[None, :]
    tri = np.maximum(0.0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
    tri *= f < sample_rate / 2
    return tri.T


class MelAnalyzer:
    """Streaming log-mel features per 10 ms for any rate, relative to the tracked speech peak.

    Each row: MEL_BANDS band levels in dB relative to a peak tracker (instant rise,
    PEAK_DECAY_DB_S fall, never below PEAK_MIN_DB) of the 60 Hz–4 kHz level, floored at
    REL_FLOOR_DB; the peak itself (dBFS); then the same bands minus the speaker's long-term
    spectrum (the running mean of speech frames, SPEAKER_S). Levels relative to the peak
    make loud and quiet recordings look alike; the 0–4 kHz level drives the peak so that
    8 kHz and 48 kHz audio track alike; the difference from the long-term spectrum says
    where this sound sits in this speaker's range (a rounded vowel has a low F2 for *this*
    voice), which a 320 ms network cannot learn from one frame alone.
    """

    def __init__(self, sample_rate: int, warp: float = 1.0) -> None:
        """``warp`` scales the filter bank's frequencies (training augmentation: a vocal
        tract of another length); the model runs at 1."""
        self.sample_rate = sample_rate
        n_win = max(16, round(MEL_WINDOW_S * sample_rate))
        self.nfft = 1 << int(np.ceil(np.log2(n_win)))
        self.window = np.hanning(n_win)
        freqs = np.fft.rfftfreq(self.nfft, 1.0 / sample_rate)
        norm = 2.0 / (self.nfft * np.sum(self.window**2))  # power spectrum -> mean square
        self.mel = mel_matrix(freqs * warp, sample_rate) * norm
        self.level = ((freqs >= 60.0) & (freqs < min(4000.0, sample_rate / 2))) * norm
        self.decay = PEAK_DECAY_DB_S * MEL_HOP_S
        self.peak = PEAK_MIN_DB
        self.ltas = np.full(MEL_BANDS, REL_FLOOR_DB / 2)  # before any speech: a flat guess
        self._speech_frames = 0
        self._framer = Framer(sample_rate, MEL_HOP_S, n_win)

    @property
    def frames_done(self) -> int:
        return self._framer.frames_done

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Append samples; return rows (n, N_MEL_FEATURES) of every frame now complete."""
        frames = self._framer.push(pcm).astype(np.float64)
        if not len(frames):
            return np.zeros((0, N_MEL_FEATURES), np.float32)
        frames -= frames.mean(axis=1, keepdims=True)
        spec = np.fft.rfft(frames * self.window, self.nfft, axis=1)
        p = spec.real**2 + spec.imag**2
        bands = 10.0 * np.log10(p @ self.mel + 10 ** (MEL_FLOOR_DB / 10))
        level = 10.0 * np.log10(p @ self.level + 10 ** (MEL_FLOOR_DB / 10))
        peaks = np.empty(len(level))
        peak, decay = self.peak, self.decay
        for i, d in enumerate(level.tolist()):
            peak = max(d, peak - decay, PEAK_MIN_DB)
            peaks[i] = peak
        self.peak = peak
        rel = np.maximum(bands - peaks[:, None], REL_FLOOR_DB)
        return np.concatenate(
            [rel, peaks[:, None], rel - self._ltas(rel, level > peaks - SPEECH_DB)], axis=1
        ).astype(np.float32)

    def _ltas(self, rel: np.ndarray, speech: np.ndarray) -> np.ndarray:
        """Long-term spectrum at every frame: a plain mean over the first speech frames,
        then an exponential one over SPEAKER_S."""
        out = np.empty_like(rel)
        ltas, n, floor = self.ltas, self._speech_frames, MEL_HOP_S / SPEAKER_S
        for i, is_speech in enumerate(speech.tolist()):
            if is_speech:
                n += 1
                ltas = ltas + max(1.0 / n, floor) * (rel[i] - ltas)
            out[i] = ltas
        self.ltas, self._speech_frames = ltas, n
        return out
