"""A synthetic DEAP-format data set: the kit's embedded default, for teaching and testing.

Introduced in ``notebooks/01_data_preparation.ipynb``.

**This data is synthetic.** No person was recorded. DEAP itself is licensed per user and
cannot be shipped, so the kit writes files that have DEAP's exact layout (``sNN.dat``: a
pickled ``dict`` with ``data`` (n_trials, 40, 8064) float64 in microvolts and ``labels``
(n_trials, 4) in [1, 9]) and reads them back through :mod:`kdlib.data.deap`, the same code
that reads the real files. Every number below is a *knob* of :class:`SynthConfig`, chosen so
that the signals look plausible and the learning problem is neither trivial nor hopeless. The
emotion effects are built in on purpose: they are **not findings about real data**, and an
accuracy obtained here says nothing about what the method achieves on DEAP.

What is built in
----------------
Ratings
    Each subject rates every trial on valence, arousal, dominance and liking (1-9). Behind
    each trial lie a latent valence and a latent arousal, spread evenly over ``5 ± latent_spread``
    (so the classes "rating > 5" are roughly balanced) and shuffled. A rating is the latent plus
    Gaussian rating noise, clipped to [1, 9]. Dominance and liking follow valence (and
    arousal) loosely. The physiology follows the *latent*, never the noisy rating, so some
    labels disagree with the signals, as with real self-reports.

EEG (channels 1-32, Geneva order)
    * Background: 1/f^chi noise (chi differs per subject), spatially correlated through a
      kernel ``exp(-d / spatial_length_m)`` of the electrode distances ``d`` in MNE's standard
      10-20 positions, plus some independent noise per electrode.
    * Rhythms, each a narrow-band process whose amplitude drifts slowly in time (bursts):
      frontal-midline theta (~6 Hz, Fz), posterior alpha (left and right, peak frequency
      8.5-11.5 Hz per subject), weaker frontal alpha (F3, F4), central beta (~20 Hz, C3, C4),
      temporal beta and weak gamma (~22 and ~36 Hz, T7, T8).
    * Per subject: alpha peak, rhythm amplitudes, aperiodic exponent and effect sizes vary.
    * Per trial: the amplitude of every rhythm also changes for reasons unrelated to emotion
      (over the whole trial, and separately during the video), which limits how well any
      classifier can do.
    * Emotion effects, only after the 3 s pre-trial baseline (the first 384 samples are
      neutral), switched on over ``onset_ramp_s``:
      valence -> frontal alpha asymmetry (higher valence, less alpha over the left frontal
      cortex than over the right: F3/F7/AF3/Fp1/FC5 vs F4/F8/AF4/Fp2/FC6) and more temporal
      beta/gamma; arousal -> less posterior alpha, more central beta, more frontal theta.
    * Then the processing of DEAP's preprocessed release: 4-45 Hz band-pass and common
      average reference, both applied in the frequency domain (zero-phase, over the whole
      63 s trial), and a small residual of the blinks in the frontal channels (DEAP removed
      EOG artefacts; the band-pass leaves little of them anyway).

EOG (channels 33 hEOG, 34 vEOG; bipolar, microvolts, *unfiltered* as in DEAP)
    DC offset per subject and trial, slow drift (1/f^2 below 1 Hz) and a linear trend, blinks
    on vEOG (asymmetric pulses of 100-300 uV lasting 200-400 ms, a small copy on hEOG),
    saccades (steps of the gaze position, large on hEOG, small on vEOG) and broadband noise.
    After the baseline, arousal raises the blink rate (and a little the blink amplitude);
    valence raises the saccade rate, a weaker and different cue.

The path from EEG to EOG (``eeg_to_eog``)
    EOG electrodes sit on the skin next to the frontal EEG sites, so they record frontal EEG by
    volume conduction as well as the eyes: a horizontal bipolar EOG between the outer canthi is
    close to a frontal-lateral difference such as F7 - F8 (where the frontal alpha asymmetry
    that carries valence lives), a vertical EOG above and below one eye picks up frontopolar
    (Fp1-like) activity. This "reverse" contamination is why regression-based ocular correction
    over-corrects the EEG in the alpha and beta bands unless the EEG present in the EOG channels
    is accounted for (Gasser et al. 1986, "The correction of EOG artifacts by frequency
    dependent and frequency independent methods", Psychophysiology, whose transfer functions
    over-compensated in the alpha and beta bands when the coherent EEG at the EOG electrodes was
    ignored; the "bidirectional contamination" of EOG by cerebral activity is stated in Ann.
    Biomed. Eng. 2008, doi:10.1007/s10439-008-9589-6). Neither gives a gain, so the value below
    is ours. The generator adds ``eeg_to_eog`` x (F7 - F8) to hEOG and ``eeg_to_eog`` x Fp1 to
    vEOG, taking the scalp EEG before DEAP's band-pass and average reference (the EEG model only
    has content in 3-46 Hz; the infraorbital electrode's own EEG is neglected; the gain is the
    same for every subject). The default 0.5 is a **judgment, not a measured value**: we found
    no published gain of frontal EEG in EOG channels. It is the model's own spatial correlation
    ``exp(-d / spatial_length_m)`` at the 3-4 cm between an outer canthus and F7. With it an
    EOG-only student *can* in principle learn an EEG cue the teacher knows; in the default
    regime that cue is faint (EOG band-power accuracy barely moves with the gain:
    ``benchmarks/results/calibrate_synthetic.md``). At 0 the EOG is byte-identical to generator
    version 1's for the same seed and EOG knobs (no random numbers are drawn for the path).

Peripheral channels 35-40 (zEMG, tEMG, GSR, respiration, plethysmograph, temperature)
    Simple plausible signals (EMG noise in uV, skin conductance level with responses in uS,
    breathing and pulse waves in arbitrary units, skin temperature in deg C). They are **not**
    modelled for emotion and carry no information about the ratings.

Ground truth (``ground_truth.csv``, written beside the files)
    One row per subject and trial: ``subject`` ("s01"), ``trial`` (0-based, the file's order;
    the DEAP loader numbers the same trials from 1), ``latent_valence``, ``latent_arousal``
    (1-9), ``rating_valence``, ``rating_arousal`` (as written to the file), and the per-trial
    parameters through which the emotion reaches each modality, all natural-log gains:

    * ``eeg__<source>_log_gain`` for the 11 rhythm sources (``theta_fm``, ``alpha_post_L/R``,
      ``alpha_front_L/R``, ``beta_central_L/R``, ``beta_temporal_L/R``, ``gamma_temporal_L/R``):
      the source's log amplitude gain during the video, emotion effect plus its per-trial
      stimulus nuisance (the EEG depends on the latent only through these), and
      ``eeg__frontal_alpha_asym_gain`` = right minus left frontal alpha gain (a derived column).
    * ``eog__blink_rate_gain``, ``eog__saccade_rate_gain``: log of (events in the 60 s video +
      0.5) over the subject's mean rate x 60 s, i.e. the realised rates (they carry the per-trial
      nuisance and the Poisson counting noise the EOG also shows); ``eog__blink_amp_gain``: the
      mean log amplitude gain of the video's blinks (per-blink variation included).
    * with ``eeg_to_eog`` > 0 only, ``eog__eeg_path_<source>_log_gain``: the EEG gains of the
      sources of which at least :data:`PATH_VISIBILITY` (10 %) reaches the path electrodes
      (frontal alpha, frontal-midline theta, temporal beta and gamma).

    :mod:`kdlib.ceilings` turns it into ceilings beside every result.

How hard is it?
    Measured with ``benchmarks/calibrate_synthetic.py`` (per subject, log band powers of 4 s
    windows after the baseline, logistic regression, 5-fold cross-validation grouped by trial,
    labels "rating > 5"); its numbers for every preset are recorded in
    ``benchmarks/results/calibrate_synthetic.md`` and are not repeated here, where they would go
    stale. In short, with the :data:`DEFAULT` knobs (generator version 2) the EEG features and
    the EOG features both land at or near the trial accuracies that real DEAP gives leakage-free
    (roughly 51-66 % for EEG and 57-63 % for peripheral signals incl. EOG, Koelstra et al. 2012),
    above the majority class of a test fold (which scores below 50 %: with balanced classes a
    training majority is more often than not the test minority); ``privileged`` puts the EEG far
    above that range and leaves the EOG's features near chance. Version 1's EEG effects, 2.5
    times larger, put the EEG far above DEAP's range and were shrunk. Do not read the synthetic
    numbers as a target for the real data.

Presets (:data:`PRESETS`)
    ``smoke`` (3 subjects), ``default`` (8), ``full`` (32, DEAP's size) share the knobs above.
    Two regimes for ``notebooks/07_when_does_distillation_help.ipynb`` (8 subjects each):
    ``privileged``, where the teacher knows much more than the EOG can show (EEG effects 2.5 x
    the default, as in version 1; EOG effects halved; ``eeg_to_eog=0``, since through the path
    the EOG would carry the EEG's strong valence cue: with the path at 0.5 the EOG oracle
    ceiling reached the EEG's for valence), and ``no_path`` (the default with
    ``eeg_to_eog=0``: the EEG and the EOG then share only the latent emotion, so the only route
    from the teacher to an EOG student is soft labels less noisy than the ratings).

Determinism: the same :class:`SynthConfig` gives byte-identical arrays. Subject ``i`` draws
from ``np.random.SeedSequence(seed).spawn(...)[i]``, so it does not depend on how many
subjects are written, and subjects are statistically independent.

Command line (:mod:`kdlib.cli`, the one command line of the kit)::

    kdlib synth --preset smoke --out data/synthetic
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .deap import (
    BASELINE_S,
    EEG_CHANNELS,
    FS,
    N_CHANNELS,
    N_SAMPLES,
    save_dat,
)

__all__ = [
    "SynthConfig",
    "SMOKE",
    "DEFAULT",
    "FULL",
    "PRIVILEGED",
    "NO_PATH",
    "PRESETS",
    "CONFIG_FILE",
    "GROUND_TRUTH_FILE",
    "GENERATOR_VERSION",
    "ground_truth_table",
    "SyntheticDataError",
    "subject_parameters",
    "generate_subject",
    "write_dataset",
    "describe",
]

GENERATOR_VERSION = 2  #: bump when the generative model changes: old folders are rewritten
CONFIG_FILE = "synthetic_config.json"  #: written beside the sNN.dat files
GROUND_TRUTH_FILE = "ground_truth.csv"  #: what the generator knows per trial, beside the sNN.dat files
N_BASELINE = int(BASELINE_S * FS)  # 384 samples of neutral pre-trial baseline
N_FREQ = N_SAMPLES // 2 + 1  # rfft bins of one trial
_VIDEO_S = (N_SAMPLES - N_BASELINE) / FS  # 60 s of video after the baseline
FREQS = np.fft.rfftfreq(N_SAMPLES, 1.0 / FS)  # (N_FREQ,) Hz, resolution 1/63 Hz
_FILE_RE = re.compile(r"^s\d+\.(dat|mat)$")


class SyntheticDataError(ValueError):
    """A bad configuration, or an output folder the generator refuses to touch."""


# --- configuration --------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the synthetic data set (see the module docstring for the model).

    Effect sizes are log amplitude gains per unit of the scaled latent ``(latent - 5) / 4``
    (which runs from -1 to 1): an effect of 0.3 multiplies an amplitude by ``exp(0.3) = 1.35``
    at the top of the scale and by ``exp(-0.3) = 0.74`` at the bottom.

    Presets (:data:`PRESETS`): ``smoke`` (3 subjects), ``default`` (8), ``full`` (32) share
    these defaults; two regimes for ``notebooks/07_when_does_distillation_help.ipynb``:
    ``privileged`` (EEG effects 2.5 x, EOG effects halved, no path: the teacher knows much more
    than the EOG can show) and ``no_path`` (``eeg_to_eog=0``: EEG and EOG share only the latent, so an
    EOG student can gain from a teacher only through soft labels less noisy than the ratings).
    ``rating_noise_sd``, ``eeg_to_eog`` and ``n_trials`` are the knobs of that notebook's sweep.
    """

    # size and seed
    n_subjects: int = 8  # subjects written, s01 ... sNN
    n_trials: int = 40  # trials per subject (DEAP: 40)
    seed: int = 0  # master seed; subject i uses SeedSequence(seed).spawn(i + 1)[i]

    # ratings
    latent_spread: float = 3.5  # latent valence/arousal spread evenly over 5 +- this
    rating_noise_sd: float = 1.0  # SD of the self-report noise: rating = latent + noise (huge: coin flips)

    # EEG background
    background_rms_uv: float = 6.0  # RMS of the 1/f background in 4-45 Hz, uV (before CAR)
    exponent_mean: float = 1.5  # mean aperiodic exponent chi of the 1/f^chi power spectrum
    exponent_sd: float = 0.2  # between-subject SD of chi
    spatial_length_m: float = 0.05  # length constant of the spatial correlation exp(-d/l), m
    sensor_noise_frac: float = 0.2  # share of background variance independent per electrode

    # EEG rhythms (RMS at the electrode nearest the generator, before CAR)
    theta_rms_uv: float = 3.0  # frontal-midline theta, uV
    alpha_posterior_rms_uv: float = 8.0  # posterior alpha (each hemisphere), uV
    alpha_frontal_rms_uv: float = 5.0  # frontal alpha (each hemisphere), uV
    beta_rms_uv: float = 2.5  # central beta (each hemisphere), uV
    temporal_beta_rms_uv: float = 2.0  # temporal beta (each hemisphere), uV
    gamma_rms_uv: float = 0.8  # temporal gamma (each hemisphere), uV
    alpha_peak_range_hz: tuple[float, float] = (8.5, 11.5)  # subject alpha peak, uniform
    amplitude_sd: float = 0.25  # between-subject SD of log rhythm amplitudes
    fluctuation_sd: float = 0.35  # SD of the slow within-trial log amplitude fluctuation
    fluctuation_hz: float = 0.2  # highest frequency of that fluctuation, Hz
    trial_state_sd: float = 0.2  # per-trial log gain of each rhythm, whole trial (not emotion)
    stimulus_state_sd: float = 0.15  # per-trial log gain during the video only (not emotion)

    # emotion effects on EEG (log gain per unit scaled latent; after the baseline only)
    valence_alpha_asymmetry: float = 0.4  # left-minus-right frontal alpha, lower with valence
    valence_temporal_beta: float = 0.2  # temporal beta and gamma, higher with valence
    arousal_posterior_alpha: float = 0.2  # posterior alpha, lower with arousal
    arousal_beta: float = 0.16  # central beta, higher with arousal
    arousal_theta: float = 0.1  # frontal-midline theta, higher with arousal
    effect_jitter_sd: float = 0.3  # between-subject SD of log effect sizes
    onset_ramp_s: float = 1.0  # effects fade in over this time after the baseline, s

    # EOG (bipolar, uV, unfiltered)
    blink_rate_hz: float = 0.25  # mean blink rate at the scale's middle (15 / min)
    blink_amp_range_uv: tuple[float, float] = (100.0, 300.0)  # subject blink amplitude, uniform
    blink_dur_range_s: tuple[float, float] = (0.2, 0.4)  # subject blink duration, uniform
    saccade_rate_hz: float = 1.0  # mean saccade rate
    saccade_amp_uv: float = 40.0  # SD of the horizontal gaze position, uV (vertical: 30 %)
    arousal_blink_rate: float = 0.7  # log blink rate per unit scaled arousal
    arousal_blink_amp: float = 0.1  # log blink amplitude per unit scaled arousal
    valence_saccade_rate: float = 0.6  # log saccade rate per unit scaled valence
    eog_trial_sd: float = 0.2  # per-trial log SD of blink and saccade rates (not emotion)
    eog_offset_uv: float = 150.0  # SD of the DC offset per subject and channel, uV
    eog_drift_uv: float = 30.0  # RMS of the slow drift (< 1 Hz), uV
    eog_noise_uv: float = 3.0  # broadband noise, uV
    blink_leakage: float = 0.02  # share of the blink left in Fp1/Fp2 after artefact removal
    eeg_to_eog: float = 0.5  # gain of frontal EEG volume-conducted into the EOG (0 = none; module docstring)

    def __post_init__(self):
        if not 1 <= self.n_subjects <= 99:
            raise SyntheticDataError(f"n_subjects must be 1-99, got {self.n_subjects}")
        if self.n_trials < 2:
            raise SyntheticDataError(f"n_trials must be at least 2, got {self.n_trials}")
        if self.seed < 0:
            raise SyntheticDataError(f"seed must be >= 0, got {self.seed}")
        if not 0 <= self.latent_spread <= 4:
            raise SyntheticDataError(f"latent_spread must be in [0, 4], got {self.latent_spread}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
        if bad:
            raise SyntheticDataError(f"these knobs must be finite numbers: {bad}")
        negative = [k for k, v in values.items()  # effects may be negative (reversed sign)
                    if not k.startswith(("valence_", "arousal_")) and np.any(np.asarray(v) < 0)]
        if negative:
            raise SyntheticDataError(f"these knobs must not be negative: {negative}")
        unordered = [k for k, v in values.items() if isinstance(v, tuple) and v[0] > v[1]]
        if unordered:
            raise SyntheticDataError(f"these ranges must be (low, high): {unordered}")
        if not 0 <= self.sensor_noise_frac <= 1:
            raise SyntheticDataError("sensor_noise_frac must be in [0, 1]")

    def to_json(self) -> dict:
        """The config as JSON-ready values, with the generator version."""
        return {"generator_version": GENERATOR_VERSION, **json.loads(json.dumps(asdict(self)))}


SMOKE = SynthConfig(n_subjects=3)  #: CI and quick checks: 3 subjects x 40 trials
DEFAULT = SynthConfig()  #: notebooks and Binder: 8 subjects x 40 trials
FULL = SynthConfig(n_subjects=32)  #: DEAP's size: 32 subjects x 40 trials
#: Regime: the teacher knows much more than the EOG can show (EEG effects 2.5 x the default,
#: version 1's sizes; EOG effects halved; no EEG in the EOG). 8 subjects x 40 trials.
PRIVILEGED = replace(DEFAULT, valence_alpha_asymmetry=1.0, valence_temporal_beta=0.5,
                     arousal_posterior_alpha=0.5, arousal_beta=0.4, arousal_theta=0.25,
                     arousal_blink_rate=0.35, arousal_blink_amp=0.05, valence_saccade_rate=0.3, eeg_to_eog=0.0)
#: Regime: no EEG in the EOG (``eeg_to_eog=0``): EEG and EOG share only the latent emotion.
NO_PATH = replace(DEFAULT, eeg_to_eog=0.0)
PRESETS = {"smoke": SMOKE, "default": DEFAULT, "full": FULL, "privileged": PRIVILEGED, "no_path": NO_PATH}


# --- scalp geometry and rhythm generators -----------------------------------------------------

@dataclass(frozen=True)
class _Source:
    name: str
    rhythm: str  # selects amplitude, frequency and emotion effect
    centre: str  # electrode nearest the generator
    width_m: float  # spatial SD of its scalp pattern


_SOURCES: tuple[_Source, ...] = (
    _Source("theta_fm", "theta", "Fz", 0.045),
    _Source("alpha_post_L", "alpha_posterior", "PO3", 0.05),
    _Source("alpha_post_R", "alpha_posterior", "PO4", 0.05),
    _Source("alpha_front_L", "alpha_frontal_L", "F3", 0.045),
    _Source("alpha_front_R", "alpha_frontal_R", "F4", 0.045),
    _Source("beta_central_L", "beta", "C3", 0.035),
    _Source("beta_central_R", "beta", "C4", 0.035),
    _Source("beta_temporal_L", "temporal_beta", "T7", 0.035),
    _Source("beta_temporal_R", "temporal_beta", "T8", 0.035),
    _Source("gamma_temporal_L", "gamma", "T7", 0.03),
    _Source("gamma_temporal_R", "gamma", "T8", 0.03),
)
N_SOURCES = len(_SOURCES)
_SOURCE_RHYTHMS = np.array([s.rhythm for s in _SOURCES])


@lru_cache(maxsize=1)
def _electrode_positions() -> np.ndarray:
    """(32, 3) head-frame positions (m) of the EEG channels from MNE's 10-20 template."""
    import mne

    builtin = mne.channels.get_builtin_montages()
    name = "colin27_1020" if "colin27_1020" in builtin else "standard_1020"  # MNE >= 1.13
    pos = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    return np.array([pos[ch] for ch in EEG_CHANNELS])  # (32, 3)


def _distances() -> np.ndarray:
    pos = _electrode_positions()  # (32, 3)
    return np.linalg.norm(pos[:, None] - pos[None], axis=-1)  # (32, 32)


@lru_cache(maxsize=8)
def _spatial_mixing(length_m: float, sensor_noise_frac: float) -> np.ndarray:
    """Cholesky factor L (32, 32) with L L^T = (1-s) exp(-d/l) + s I (unit diagonal)."""
    kernel = np.exp(-_distances() / max(length_m, 1e-6))
    cov = (1 - sensor_noise_frac) * kernel + sensor_noise_frac * np.eye(len(EEG_CHANNELS))
    return np.linalg.cholesky(cov + 1e-9 * np.eye(len(EEG_CHANNELS)))


@lru_cache(maxsize=1)
def _source_patterns() -> np.ndarray:
    """(32, n_sources) scalp pattern of each rhythm generator (1 at its centre electrode)."""
    pos = _electrode_positions()
    idx = {ch: i for i, ch in enumerate(EEG_CHANNELS)}
    cols = []
    for s in _SOURCES:
        d = np.linalg.norm(pos - pos[idx[s.centre]], axis=1)  # (32,)
        cols.append(np.exp(-0.5 * (d / s.width_m) ** 2))
    return np.stack(cols, axis=1)  # (32, n_sources)


def _bandpass_gain(lo: float = 4.0, hi: float = 45.0, edge: float = 1.0) -> np.ndarray:
    """(N_FREQ,) zero-phase band-pass: 1 in [lo, hi], raised-cosine edges ``edge`` Hz wide."""
    g = np.zeros_like(FREQS)
    g[(FREQS >= lo) & (FREQS <= hi)] = 1.0
    low = (FREQS > lo - edge) & (FREQS < lo)
    g[low] = 0.5 - 0.5 * np.cos(np.pi * (FREQS[low] - (lo - edge)) / edge)
    high = (FREQS > hi) & (FREQS < hi + edge)
    g[high] = 0.5 + 0.5 * np.cos(np.pi * (FREQS[high] - hi) / edge)
    return g


_BANDPASS = _bandpass_gain()  # (N_FREQ,)
_BAND = slice(int(np.flatnonzero(_BANDPASS)[0]), int(np.flatnonzero(_BANDPASS)[-1]) + 1)
_FRONTOPOLAR = [EEG_CHANNELS.index("Fp1"), EEG_CHANNELS.index("Fp2")]
#: (2, 32) scalp EEG carried into (hEOG, vEOG) by volume conduction, before the gain
#: ``eeg_to_eog``: hEOG (outer canthi) ~ F7 - F8, vEOG (above minus below the left eye) ~ Fp1.
_PATH_WEIGHTS = np.zeros((2, len(EEG_CHANNELS)))
_PATH_WEIGHTS[0, EEG_CHANNELS.index("F7")], _PATH_WEIGHTS[0, EEG_CHANNELS.index("F8")] = 1.0, -1.0
_PATH_WEIGHTS[1, EEG_CHANNELS.index("Fp1")] = 1.0
PATH_VISIBILITY = 0.1  #: a source counts as seen through the path when >= this share of it reaches it


def _onset_ramp(ramp_s: float) -> np.ndarray:
    """(N_SAMPLES,) 0 during the baseline, raised-cosine rise to 1 over ``ramp_s``."""
    t = (np.arange(N_SAMPLES) - N_BASELINE) / FS  # s since the video started
    x = np.clip(t / ramp_s, 0.0, 1.0) if ramp_s > 0 else (t >= 0).astype(float)
    return 0.5 - 0.5 * np.cos(np.pi * x)


# --- noise helpers -----------------------------------------------------------------------------

def _shaped_noise(rng: np.random.Generator, n_rows: int, amplitude: np.ndarray) -> np.ndarray:
    """Real Gaussian noise (n_rows, N_SAMPLES) of unit variance with spectrum ~ ``amplitude``.

    ``amplitude`` (N_FREQ,) is the magnitude profile (the square root of the power spectrum);
    it is normalised, so only its shape matters. DC and Nyquist bins are left out.
    """
    amp = np.array(amplitude, dtype=float)
    amp[0] = amp[-1] = 0.0
    amp *= N_SAMPLES / (2.0 * np.sqrt(np.sum(amp**2)))
    z = rng.standard_normal((2, n_rows, N_FREQ))
    return np.fft.irfft((z[0] + 1j * z[1]) * amp, n=N_SAMPLES)  # (n_rows, N_SAMPLES)


def _slow_noise(rng: np.random.Generator, n_rows: int, max_hz: float) -> np.ndarray:
    """Unit-variance noise (n_rows, N_SAMPLES) with a flat spectrum up to ``max_hz``."""
    return _shaped_noise(rng, n_rows, (FREQS <= max(max_hz, 2.0 / 63.0)).astype(float))


def _bump(f0: float, bw: float) -> np.ndarray:
    """(N_FREQ,) Gaussian magnitude profile around ``f0`` Hz with SD ``bw`` Hz."""
    return np.exp(-0.5 * ((FREQS - f0) / bw) ** 2)


# --- subjects ----------------------------------------------------------------------------------

def _subject_seed(subject_index: int, config: SynthConfig) -> np.random.SeedSequence:
    """Subject ``subject_index``'s own stream; independent of ``config.n_subjects``."""
    return np.random.SeedSequence(config.seed).spawn(subject_index + 1)[subject_index]


def subject_parameters(subject_index: int, config: SynthConfig = DEFAULT) -> dict:
    """The hidden "physiology" of one synthetic subject (the ground truth, for teaching).

    Parameters
    ----------
    subject_index : int
        0-based (subject ``s01`` is index 0).
    config : SynthConfig

    Returns
    -------
    dict
        Aperiodic ``exponent``; rhythm peak frequencies ``*_hz``; per-source ``amplitude_uv``
        (n_sources,); ``effects`` (n_sources, 2) log gains per unit scaled (valence, arousal);
        the EOG parameters ``blink_*``, ``saccade_*``, ``eog_offset_uv`` (2,) and effects.
    """
    params_seq = _subject_seed(subject_index, config).spawn(1)[0]
    return _draw_subject(np.random.default_rng(params_seq), config)


def _draw_subject(rng: np.random.Generator, cfg: SynthConfig) -> dict:
    jitter = lambda: float(np.exp(cfg.effect_jitter_sd * rng.standard_normal()))  # noqa: E731
    base_rms = {"theta": cfg.theta_rms_uv, "alpha_posterior": cfg.alpha_posterior_rms_uv,
                "alpha_frontal_L": cfg.alpha_frontal_rms_uv,
                "alpha_frontal_R": cfg.alpha_frontal_rms_uv, "beta": cfg.beta_rms_uv,
                "temporal_beta": cfg.temporal_beta_rms_uv, "gamma": cfg.gamma_rms_uv}
    subject_gain = np.exp(cfg.amplitude_sd * rng.standard_normal(N_SOURCES))
    amplitude = np.array([base_rms[r] for r in _SOURCE_RHYTHMS]) * subject_gain  # (n_sources,)
    # (valence, arousal) log gain per source
    asym, tbeta = cfg.valence_alpha_asymmetry * jitter(), cfg.valence_temporal_beta * jitter()
    palpha, beta = cfg.arousal_posterior_alpha * jitter(), cfg.arousal_beta * jitter()
    theta = cfg.arousal_theta * jitter()
    per_rhythm = {"theta": (0.0, theta), "alpha_posterior": (0.0, -palpha),
                  "alpha_frontal_L": (-asym / 2, 0.0), "alpha_frontal_R": (asym / 2, 0.0),
                  "beta": (0.0, beta), "temporal_beta": (tbeta, 0.0),
                  "gamma": (tbeta, 0.5 * beta)}
    effects = np.array([per_rhythm[r] for r in _SOURCE_RHYTHMS])  # (n_sources, 2)
    lo, hi = cfg.alpha_peak_range_hz
    return {
        "exponent": float(np.clip(cfg.exponent_mean + cfg.exponent_sd * rng.standard_normal(),
                                  0.5, 3.0)),
        "alpha_hz": float(rng.uniform(lo, hi)),
        "theta_hz": float(rng.uniform(5.5, 6.5)),
        "beta_hz": float(rng.uniform(18.0, 22.0)),
        "temporal_beta_hz": float(rng.uniform(20.0, 25.0)),
        "gamma_hz": float(rng.uniform(33.0, 40.0)),
        "amplitude_uv": amplitude,
        "effects": effects,
        "blink_rate_hz": float(cfg.blink_rate_hz * np.exp(0.3 * rng.standard_normal())),
        "blink_amp_uv": float(rng.uniform(*cfg.blink_amp_range_uv)),
        "blink_dur_s": float(rng.uniform(*cfg.blink_dur_range_s)),
        "saccade_rate_hz": float(cfg.saccade_rate_hz * np.exp(0.2 * rng.standard_normal())),
        "saccade_amp_uv": float(cfg.saccade_amp_uv * np.exp(0.2 * rng.standard_normal())),
        "arousal_blink_rate": cfg.arousal_blink_rate * jitter(),
        "arousal_blink_amp": cfg.arousal_blink_amp * jitter(),
        "valence_saccade_rate": cfg.valence_saccade_rate * jitter(),
        "eog_offset_uv": cfg.eog_offset_uv * rng.standard_normal(2),
        "gsr_level_us": float(rng.uniform(2.0, 10.0)),
        "temperature_c": float(rng.uniform(31.0, 34.0)),
        "breathing_hz": float(rng.uniform(0.2, 0.33)),
        "heart_hz": float(rng.uniform(1.0, 1.3)),
    }


def _source_spectra(p: dict) -> np.ndarray:
    """(n_sources, N_FREQ) magnitude profile of each rhythm generator."""
    centre = {"theta": (p["theta_hz"], 1.0), "alpha_posterior": (p["alpha_hz"], 0.8),
              "alpha_frontal_L": (p["alpha_hz"], 0.8), "alpha_frontal_R": (p["alpha_hz"], 0.8),
              "beta": (p["beta_hz"], 3.0), "temporal_beta": (p["temporal_beta_hz"], 3.0),
              "gamma": (p["gamma_hz"], 4.0)}
    return np.stack([_bump(*centre[r]) for r in _SOURCE_RHYTHMS])


# --- ratings -----------------------------------------------------------------------------------

def _latents(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """(n,) latents stratified evenly over 5 +- spread, in random order."""
    q = (np.arange(n) + rng.uniform(size=n)) / n  # one draw per stratum of (0, 1)
    return rng.permutation(5.0 + spread * (2.0 * q - 1.0))


def _ratings(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Latent (n_trials, 2) valence/arousal and ratings (n_trials, 4) in [1, 9]."""
    n = cfg.n_trials
    val, aro = _latents(rng, n, cfg.latent_spread), _latents(rng, n, cfg.latent_spread)
    dom = 5 + 0.4 * (val - 5) + 0.2 * (aro - 5) + 1.2 * rng.standard_normal(n)
    lik = 5 + 0.7 * (val - 5) + 1.0 * rng.standard_normal(n)
    latent = np.stack([val, aro, dom, lik], axis=1)  # (n_trials, 4)
    ratings = np.clip(latent + cfg.rating_noise_sd * rng.standard_normal((n, 4)), 1.0, 9.0)
    return latent[:, :2], ratings


# --- one trial ---------------------------------------------------------------------------------

def _eeg_trial(rng, p: dict, cfg: SynthConfig, v: np.ndarray, spectra: np.ndarray,
               blink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EEG of one trial; ``v`` = scaled (valence, arousal) latent.

    Everything after the rhythm gains is linear, so it is done on the in-band rfft bins only:
    projection to the scalp, background, blink residual, band-pass and average reference.

    Returns
    -------
    eeg : ndarray, shape (32, N_SAMPLES)
        After DEAP's band-pass and average reference.
    path : ndarray, shape (2, N_SAMPLES)
        The scalp EEG that volume conduction carries into (hEOG, vEOG), before any gain:
        F7 - F8 and Fp1 (:data:`_PATH_WEIGHTS`), unfiltered and unreferenced.
    stim : ndarray, shape (n_sources,)
        Each rhythm's log gain during the video (emotion + its stimulus nuisance).
    """
    ramp = _onset_ramp(cfg.onset_ramp_s)  # (T,)
    # rhythms: narrow-band noise x slowly varying gain x emotion gain after the baseline
    z = rng.standard_normal((2, N_SOURCES, N_FREQ))
    norm = N_SAMPLES / (2.0 * np.sqrt(np.sum(spectra**2, axis=1, keepdims=True)))
    osc = np.fft.irfft((z[0] + 1j * z[1]) * spectra * norm, n=N_SAMPLES)  # (n_src, T), unit var
    state = cfg.trial_state_sd * rng.standard_normal(N_SOURCES)  # (n_src,)
    stim = p["effects"] @ v + cfg.stimulus_state_sd * rng.standard_normal(N_SOURCES)  # (n_src,)
    log_gain = (cfg.fluctuation_sd * _slow_noise(rng, N_SOURCES, cfg.fluctuation_hz)
                + state[:, None] + stim[:, None] * ramp)  # (n_src, T)
    sources = osc * (p["amplitude_uv"][:, None] * np.exp(log_gain))  # (n_src, T)
    src = np.fft.rfft(sources, axis=1)[:, _BAND]  # (n_src, n_band)
    spec = _real_matmul(_source_patterns(), src) + _background(rng, p, cfg)  # (32, n_band)
    path = np.zeros((2, N_FREQ), dtype=complex)  # (2, N_FREQ): EEG seen by hEOG, vEOG
    path[:, _BAND] = _PATH_WEIGHTS @ spec
    spec[_FRONTOPOLAR] += cfg.blink_leakage * np.fft.rfft(blink)[_BAND]
    spec *= _BANDPASS[_BAND]
    spec -= spec.mean(axis=0, keepdims=True)  # common average reference
    full = np.zeros((len(EEG_CHANNELS), N_FREQ), dtype=complex)  # (32, N_FREQ)
    full[:, _BAND] = spec
    return np.fft.irfft(full, n=N_SAMPLES), np.fft.irfft(path, n=N_SAMPLES), stim  # (32, T), (2, T)


def _real_matmul(a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``a @ z`` for real ``a`` and complex ``z`` through two real (BLAS) products."""
    return (a @ z.real) + 1j * (a @ z.imag)


def _background(rng, p: dict, cfg: SynthConfig) -> np.ndarray:
    """(32, n_band) in-band spectrum of the spatially correlated 1/f^chi background."""
    f = FREQS[_BAND]
    amp = f ** (-p["exponent"] / 2)  # magnitude ~ sqrt(1/f^chi); band-passed by the caller
    amp *= cfg.background_rms_uv * N_SAMPLES / (2.0 * np.sqrt(np.sum(amp**2)))
    z = rng.standard_normal((2, len(EEG_CHANNELS), len(f)))  # independent per row
    mixing = _spatial_mixing(cfg.spatial_length_m, cfg.sensor_noise_frac)  # (32, 32)
    return _real_matmul(mixing, z[0] + 1j * z[1]) * amp


def _event_times(rng, rate_base: float, rate_stim: float) -> np.ndarray:
    """Sample indices of a Poisson process, with one rate in the baseline, one after."""
    dur_base, dur_stim = N_BASELINE / FS, (N_SAMPLES - N_BASELINE) / FS
    t_base = rng.uniform(0, dur_base, rng.poisson(rate_base * dur_base))
    t_stim = dur_base + rng.uniform(0, dur_stim, rng.poisson(rate_stim * dur_stim))
    return np.sort((np.concatenate([t_base, t_stim]) * FS).astype(int))


def _blinks(rng, p: dict, cfg: SynthConfig, v: np.ndarray) -> tuple[np.ndarray, dict]:
    """(N_SAMPLES,) blink waveform (uV, positive on vEOG) of one trial, and its video statistics
    (log blink rate relative to the subject's mean rate, mean log amplitude gain)."""
    nuisance = np.exp(cfg.eog_trial_sd * rng.standard_normal())
    rate_stim = p["blink_rate_hz"] * nuisance * np.exp(p["arousal_blink_rate"] * v[1])
    onsets = _event_times(rng, p["blink_rate_hz"] * nuisance, rate_stim)  # (n_blinks,)
    amp = p["blink_amp_uv"] * np.exp(0.15 * rng.standard_normal(len(onsets)))
    amp[onsets >= N_BASELINE] *= np.exp(p["arousal_blink_amp"] * v[1])
    video = onsets >= N_BASELINE
    log_amp = np.log(amp[video] / p["blink_amp_uv"])  # (n_video_blinks,)
    stats = {"blink_rate_gain": float(np.log((video.sum() + 0.5) / (p["blink_rate_hz"] * _VIDEO_S))),
             "blink_amp_gain": float(log_amp.mean()) if len(log_amp) else 0.0}
    dur = p["blink_dur_s"] * rng.uniform(0.8, 1.2, len(onsets))  # (n_blinks,) s
    lag = np.arange(int(0.6 * FS)) / FS  # (L,) s, long enough for the longest blink
    tp = dur[:, None] / 3  # time to peak: fast closing, slower opening
    shape = (lag / tp) ** 2 * np.exp(2 * (1 - lag / tp))  # (n_blinks, L), gamma pulse, peak 1
    idx = onsets[:, None] + np.arange(len(lag))  # (n_blinks, L)
    keep = idx < N_SAMPLES
    out = np.zeros(N_SAMPLES)
    np.add.at(out, idx[keep], (amp[:, None] * shape)[keep])
    return out, stats


def _gaze(rng, p: dict, cfg: SynthConfig, v: np.ndarray) -> tuple[np.ndarray, dict]:
    """(2, N_SAMPLES) horizontal and vertical gaze position (uV): fixations and saccades; and the
    log saccade rate of the video relative to the subject's mean rate."""
    nuisance = np.exp(cfg.eog_trial_sd * rng.standard_normal())
    rate = p["saccade_rate_hz"] * nuisance
    times = _event_times(rng, rate, rate * np.exp(p["valence_saccade_rate"] * v[0]))
    n_video = int((times >= N_BASELINE).sum())
    stats = {"saccade_rate_gain": float(np.log((n_video + 0.5) / (p["saccade_rate_hz"] * _VIDEO_S)))}
    scale = p["saccade_amp_uv"] * np.array([1.0, 0.3])[:, None]  # (2, 1)
    fixations = scale * rng.standard_normal((2, len(times) + 1))  # (2, n_sacc + 1)
    which = np.searchsorted(times, np.arange(N_SAMPLES), side="right")  # (T,) fixation index
    pos = fixations[:, which]  # (2, T), steps
    kernel = np.ones(5) / 5  # ~40 ms saccade
    return np.stack([np.convolve(row, kernel, mode="same") for row in pos]), stats


def _eog_trial(rng, p: dict, cfg: SynthConfig, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """EOG (2, N_SAMPLES) of one trial, unfiltered and without the EEG path, its blink waveform
    (N_SAMPLES,) and the statistics of its blinks and saccades during the video."""
    blink, blink_stats = _blinks(rng, p, cfg, v)  # (T,)
    eog, gaze_stats = _gaze(rng, p, cfg, v)  # (2, T)
    eog += np.array([0.05, 1.0])[:, None] * blink
    drift_shape = np.where(FREQS > 0, 1.0 / np.maximum(FREQS, 1e-3), 0.0) * (FREQS <= 1.0)
    eog += cfg.eog_drift_uv * _shaped_noise(rng, 2, drift_shape)  # 1/f^2 power below 1 Hz
    t = np.arange(N_SAMPLES) / FS
    slope = 0.5 * rng.standard_normal((2, 1))  # uV / s electrode polarisation
    offset = p["eog_offset_uv"][:, None] + 20.0 * rng.standard_normal((2, 1))
    eog += offset + slope * t + cfg.eog_noise_uv * rng.standard_normal((2, N_SAMPLES))
    return eog, blink, {**blink_stats, **gaze_stats}


def _peripheral_trial(rng, p: dict) -> np.ndarray:
    """(6, N_SAMPLES) zEMG, tEMG (uV), GSR (uS), Resp, Plet (a.u.), Temp (deg C).

    Simple plausible signals with no relation to the ratings.
    """
    t = np.arange(N_SAMPLES) / FS
    slow = _slow_noise(rng, 4, 0.1)  # (4, T)
    emg = rng.standard_normal((2, N_SAMPLES)) * (2.0 * np.exp(0.3 * slow[:2]))  # (2, T)
    scr_times = _event_times(rng, 0.05, 0.05)
    impulses = np.zeros(N_SAMPLES)
    impulses[scr_times] = rng.uniform(0.05, 0.4, len(scr_times))
    lag = np.arange(int(10 * FS)) / FS
    scr = np.convolve(impulses, (1 - np.exp(-lag / 0.7)) * np.exp(-lag / 3.0))[:N_SAMPLES]
    gsr = p["gsr_level_us"] * np.exp(0.1 * rng.standard_normal()) + 0.2 * slow[2] + scr
    resp_rate = p["breathing_hz"] * np.exp(0.1 * slow[3])
    resp = 500 * np.sin(2 * np.pi * np.cumsum(resp_rate) / FS + rng.uniform(0, 2 * np.pi))
    heart = p["heart_hz"] * np.exp(0.05 * rng.standard_normal())
    phase = 2 * np.pi * heart * t + rng.uniform(0, 2 * np.pi)
    plet = 1000 * (np.sin(phase) + 0.4 * np.sin(2 * phase + 0.8) + 0.15 * np.sin(3 * phase))
    temp = p["temperature_c"] + 0.1 * rng.standard_normal() + 0.05 * slow[2] + 0.002 * t
    resp += 10.0 * rng.standard_normal(N_SAMPLES)
    return np.vstack([emg, gsr, resp, plet, temp])  # (6, T)


# --- public generation -------------------------------------------------------------------------

def generate_subject(subject_index: int, config: SynthConfig = DEFAULT) -> dict[str, np.ndarray]:
    """Generate one synthetic subject in DEAP's layout.

    Parameters
    ----------
    subject_index : int
        0-based index (``s01`` is 0). It may exceed ``config.n_subjects``.
    config : SynthConfig

    Returns
    -------
    dict
        ``data`` (n_trials, 40, 8064) float64, microvolts for EEG and EOG;
        ``labels`` (n_trials, 4) float64 ratings (valence, arousal, dominance, liking) in [1, 9];
        ``latent`` (n_trials, 2) the latent valence and arousal that drive the signals;
        ``truth`` a dict of (n_trials,) arrays: the emotion-bearing parameters of every trial
        (:data:`GROUND_TRUTH_FILE` describes them; latent and truth are not in the sNN files).
    """
    if subject_index < 0:
        raise SyntheticDataError(f"subject_index must be >= 0, got {subject_index}")
    params_seq, ratings_seq, trials_seq = _subject_seed(subject_index, config).spawn(3)
    p = _draw_subject(np.random.default_rng(params_seq), config)
    latent, labels = _ratings(np.random.default_rng(ratings_seq), config)  # (n, 2), (n, 4)
    scaled = (latent - 5.0) / 4.0  # (n_trials, 2) in [-1, 1]
    spectra = _source_spectra(p)  # (n_sources, N_FREQ)
    data = np.empty((config.n_trials, N_CHANNELS, N_SAMPLES))  # (n_trials, 40, 8064)
    stims, eog_stats = [], []
    for k, seq in enumerate(trials_seq.spawn(config.n_trials)):
        rng = np.random.default_rng(seq)
        eog, blink, stats = _eog_trial(rng, p, config, scaled[k])  # (2, T), (T,)
        data[k, :32], path, stim = _eeg_trial(rng, p, config, scaled[k], spectra, blink)
        if config.eeg_to_eog:  # no new random numbers: at 0 the EOG is the version-1 EOG
            eog = eog + config.eeg_to_eog * path  # (2, T)
        data[k, 32:34] = eog
        data[k, 34:] = _peripheral_trial(rng, p)
        stims.append(stim)
        eog_stats.append(stats)
    truth = _truth(config, np.array(stims), eog_stats)
    return {"data": data, "labels": labels, "latent": latent, "truth": truth}


def _path_sources() -> list[int]:
    """Indices of the rhythm sources of which >= :data:`PATH_VISIBILITY` reaches the EEG path."""
    seen = np.abs(_PATH_WEIGHTS @ _source_patterns()).max(axis=0)  # (n_sources,)
    return [j for j in range(N_SOURCES) if seen[j] >= PATH_VISIBILITY]


def _truth(cfg: SynthConfig, stim: np.ndarray, eog_stats: list[dict]) -> dict[str, np.ndarray]:
    """The per-trial emotion-bearing parameters, by modality (column names of the truth file)."""
    names = [s.name for s in _SOURCES]
    out = {f"eeg__{n}_log_gain": stim[:, j] for j, n in enumerate(names)}  # (n_trials,) each
    idx = {n: j for j, n in enumerate(names)}
    out["eeg__frontal_alpha_asym_gain"] = stim[:, idx["alpha_front_R"]] - stim[:, idx["alpha_front_L"]]
    for key in eog_stats[0]:
        out[f"eog__{key}"] = np.array([st[key] for st in eog_stats])
    if cfg.eeg_to_eog:
        out.update({f"eog__eeg_path_{names[j]}_log_gain": stim[:, j] for j in _path_sources()})
    return out


# --- writing -----------------------------------------------------------------------------------

def _subject_path(folder: Path, subject_index: int) -> Path:
    return folder / f"s{subject_index + 1:02d}.dat"


def _read_config(folder: Path) -> dict | None:
    path = folder / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: treated as "another config"


def _same_data(stored: dict | None, config: SynthConfig) -> bool:
    """True when ``stored`` describes the same subjects (n_subjects may differ)."""
    if not stored:
        return False
    want = config.to_json()
    return {k: v for k, v in stored.items() if k != "n_subjects"} == \
           {k: v for k, v in want.items() if k != "n_subjects"}


def _write_config(folder: Path, config: SynthConfig) -> None:
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config.to_json(), indent=2) + "\n")
    tmp.replace(folder / CONFIG_FILE)


def _prepare_folder(folder: Path, config: SynthConfig, overwrite: bool) -> bool:
    """Make ``folder`` ready for ``config``; return True when existing files may be kept."""
    subject_files = sorted(p for p in folder.glob("s*.*") if _FILE_RE.match(p.name))
    stored = _read_config(folder)
    if stored is None and subject_files:
        raise SyntheticDataError(
            f"{folder}: holds sNN files that kdlib did not write (no {CONFIG_FILE}); "
            "refusing to touch them: choose another folder or delete them yourself")
    reuse = _same_data(stored, config) and not overwrite
    wanted = {_subject_path(folder, i).name for i in range(config.n_subjects)}
    for path in subject_files:  # ours: drop stale subjects before marking the new config
        if not reuse or path.name not in wanted:
            path.unlink()
    if not reuse:
        (folder / GROUND_TRUTH_FILE).unlink(missing_ok=True)
    _write_config(folder, config)
    return reuse


def ground_truth_table(subject_index: int, arrays: dict):
    """One subject's rows of :data:`GROUND_TRUTH_FILE`, from :func:`generate_subject`'s output.

    Parameters
    ----------
    subject_index : int
        0-based (``s01`` is 0).
    arrays : dict
        :func:`generate_subject` output (``latent`` and ``truth`` are used).

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``subject`` ("s01"), ``trial`` (0-based, in the file's order; the
        DEAP loader numbers the same trials from 1), ``latent_valence``, ``latent_arousal`` (1-9
        scale), ``rating_valence``, ``rating_arousal`` (the ratings written to the file, so that a
        reader can check the truth belongs to the files) and the emotion-bearing parameters,
        ``eeg__*`` and ``eog__*`` (module docstring, "Ground truth").
    """
    import pandas as pd

    n = len(arrays["latent"])
    table = pd.DataFrame({"subject": f"s{subject_index + 1:02d}", "trial": np.arange(n),
                          "latent_valence": arrays["latent"][:, 0], "latent_arousal": arrays["latent"][:, 1],
                          "rating_valence": arrays["labels"][:, 0], "rating_arousal": arrays["labels"][:, 1]})
    return pd.concat([table, pd.DataFrame(arrays["truth"])], axis=1)


def _read_truth(folder: Path, n_trials: int) -> dict:
    """``{subject: rows}`` of a folder's ground truth file; {} when absent or unreadable."""
    import pandas as pd

    try:
        table = pd.read_csv(folder / GROUND_TRUTH_FILE)
    except (OSError, ValueError):
        return {}
    if not {"subject", "trial", "latent_valence", "latent_arousal"} <= set(table):
        return {}
    return {sub: rows.reset_index(drop=True) for sub, rows in table.groupby("subject", sort=True)
            if len(rows) == n_trials}


def _write_truth(folder: Path, truth: dict) -> None:
    import pandas as pd

    from ..io import atomic_write

    with atomic_write(folder / GROUND_TRUTH_FILE, "w") as fh:
        pd.concat([truth[k] for k in sorted(truth)], ignore_index=True).to_csv(fh, index=False)


def write_dataset(out_dir=None, config: SynthConfig = DEFAULT, overwrite: bool = False,
                  progress: bool = True) -> list[Path]:
    """Write ``config.n_subjects`` synthetic subjects as DEAP-format ``sNN.dat`` files.

    Parameters
    ----------
    out_dir : path-like, optional
        Target folder; default :func:`kdlib.paths.synthetic_dir` (``data/synthetic``).
    config : SynthConfig
        A preset (:data:`SMOKE`, :data:`DEFAULT`, :data:`FULL`) or your own.
    overwrite : bool
        Regenerate every file even when the folder already matches ``config``.
    progress : bool
        Show a tqdm bar over subjects (on stderr).

    Returns
    -------
    list of Path
        ``s01.dat`` ... in subject order.

    Notes
    -----
    The folder is a cache of a deterministic function of the config, so the rules are:

    * The config is stored as ``synthetic_config.json`` beside the files. Files written
      with the same config (and generator version) are kept and only missing subjects are
      generated; asking for fewer subjects removes the extra files.
    * A folder written by this generator with *another* config is regenerated: its ``sNN``
      files are deleted first, then the new config is recorded, then the files are written
      (one at a time, atomically), so an interrupted run resumes correctly.
    * A folder holding ``sNN.dat``/``sNN.mat`` files but no ``synthetic_config.json`` (for
      example a real DEAP copy) is never touched: :class:`SyntheticDataError` is raised,
      even with ``overwrite=True``.
    * The ground truth of every subject (:func:`ground_truth_table`) is written beside the
      files as :data:`GROUND_TRUTH_FILE`, atomically, after each subject; a kept subject whose
      rows are missing there is generated again for its truth (its file is kept).
    """
    from tqdm import tqdm

    from ..paths import resolve, synthetic_dir

    folder = resolve(out_dir, synthetic_dir())
    if folder.exists() and not folder.is_dir():
        raise SyntheticDataError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    reuse = _prepare_folder(folder, config, overwrite)
    paths = [_subject_path(folder, i) for i in range(config.n_subjects)]
    stored = _read_truth(folder, config.n_trials) if reuse else {}
    truth = {f"s{i + 1:02d}": stored[f"s{i + 1:02d}"] for i in range(config.n_subjects)
             if f"s{i + 1:02d}" in stored}
    for i, path in enumerate(tqdm(paths, desc="synthetic subjects", unit="subject",
                                  disable=not progress)):
        kept = reuse and path.is_file()
        if kept and f"s{i + 1:02d}" in truth:
            continue
        arrays = generate_subject(i, config)
        if not kept:
            save_dat(path, arrays["data"], arrays["labels"])
        truth[f"s{i + 1:02d}"] = ground_truth_table(i, arrays)
        _write_truth(folder, truth)  # after every subject: an interrupted run loses none
    if set(truth) != set(stored):
        _write_truth(folder, truth)  # e.g. fewer subjects than before
    return paths


# --- description -------------------------------------------------------------------------------

def describe(config: SynthConfig = DEFAULT):
    """A table of what the synthetic data set builds in, for the notebooks.

    Parameters
    ----------
    config : SynthConfig

    Returns
    -------
    pandas.DataFrame
        One row per component: ``signal``, ``channels``, ``model``, ``emotion effect`` (with
        the knob values of ``config``). All effects are design choices, not facts.
    """
    import pandas as pd

    c = config
    rows = [
        ("size", "-", f"{c.n_subjects} subjects x {c.n_trials} trials x 40 channels x "
         f"{N_SAMPLES} samples at {FS:g} Hz (3 s baseline + 60 s trial), seed {c.seed}", "-"),
        ("ratings", "labels", f"latent evenly over 5 +- {c.latent_spread:g}, rating = latent + "
         f"N(0, {c.rating_noise_sd:g}^2), clipped to [1, 9]; dominance and liking follow "
         "valence loosely", "signals follow the latent, not the rating"),
        ("EEG background", "EEG 1-32", f"1/f^chi, chi ~ N({c.exponent_mean:g}, "
         f"{c.exponent_sd:g}^2) per subject, {c.background_rms_uv:g} uV RMS, spatial "
         f"correlation exp(-d / {c.spatial_length_m:g} m)", "none"),
        ("theta", "Fz (frontal midline)", f"~6 Hz, {c.theta_rms_uv:g} uV RMS, bursting",
         f"arousal +{c.arousal_theta:g}"),
        ("posterior alpha", "PO3, PO4", f"peak {c.alpha_peak_range_hz[0]:g}-"
         f"{c.alpha_peak_range_hz[1]:g} Hz per subject, {c.alpha_posterior_rms_uv:g} uV RMS",
         f"arousal -{c.arousal_posterior_alpha:g}"),
        ("frontal alpha", "F3, F4", f"same peak, {c.alpha_frontal_rms_uv:g} uV RMS",
         f"valence: left -{c.valence_alpha_asymmetry / 2:g}, right "
         f"+{c.valence_alpha_asymmetry / 2:g} (asymmetry)"),
        ("central beta", "C3, C4", f"~20 Hz, {c.beta_rms_uv:g} uV RMS",
         f"arousal +{c.arousal_beta:g}"),
        ("temporal beta / gamma", "T7, T8", f"~22 Hz {c.temporal_beta_rms_uv:g} uV, ~36 Hz "
         f"{c.gamma_rms_uv:g} uV", f"valence +{c.valence_temporal_beta:g}, gamma also "
         f"arousal +{c.arousal_beta / 2:g}"),
        ("EEG nuisance", "EEG 1-32", f"slow amplitude fluctuation SD {c.fluctuation_sd:g}, "
         f"per-trial gain SD {c.trial_state_sd:g} (whole trial) and {c.stimulus_state_sd:g} "
         f"(video only), subject effect jitter SD {c.effect_jitter_sd:g}", "none"),
        ("EEG processing", "EEG 1-32", "4-45 Hz band-pass and common average reference "
         f"(as DEAP's preprocessed release), blink residual {c.blink_leakage:g} on Fp1/Fp2",
         "effects start after the 3 s baseline"),
        ("blinks", "vEOG (5 % on hEOG)", f"{c.blink_rate_hz * 60:g} / min, "
         f"{c.blink_amp_range_uv[0]:g}-{c.blink_amp_range_uv[1]:g} uV, "
         f"{c.blink_dur_range_s[0]:g}-{c.blink_dur_range_s[1]:g} s",
         f"arousal: rate +{c.arousal_blink_rate:g}, amplitude +{c.arousal_blink_amp:g}"),
        ("saccades", "hEOG (30 % on vEOG)", f"{c.saccade_rate_hz:g} / s, gaze SD "
         f"{c.saccade_amp_uv:g} uV", f"valence: rate +{c.valence_saccade_rate:g}"),
        ("EEG in the EOG", "hEOG, vEOG", f"volume conduction: hEOG += {c.eeg_to_eog:g} x (F7 - F8), "
         f"vEOG += {c.eeg_to_eog:g} x Fp1 (scalp EEG before band-pass and reference; 0 = none)",
         "the EEG's own effects (frontal alpha asymmetry: valence)" if c.eeg_to_eog else "none (path off)"),
        ("EOG drift", "hEOG, vEOG", f"unfiltered: DC offset SD {c.eog_offset_uv:g} uV, drift "
         f"{c.eog_drift_uv:g} uV RMS below 1 Hz, linear trend, noise {c.eog_noise_uv:g} uV",
         "none"),
        ("peripheral", "35-40", "EMG noise, skin conductance with responses, breathing, pulse, "
         "temperature", "none (not modelled)"),
    ]
    table = pd.DataFrame(rows, columns=["signal", "channels", "model", "emotion effect"])
    table.attrs["note"] = ("Synthetic data: effects are log amplitude gains per unit scaled "
                           "latent (latent - 5) / 4, chosen as knobs, not facts about real EEG.")
    return table
