"""A custom data set's eye electrodes as notebook 06 shows them (``notebooks/06_bring_your_own_data.ipynb``).

- :func:`plot_monopolar_eog`: monopolar eye electrodes as stored (offsets and a common drift) above
  the bipolar derivations formed from them (what a manifest's ``[anode, cathode]`` pairs ask for).

Plain numbers in, Axes out; nothing else from kdlib is imported.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_monopolar_eog"]


def plot_monopolar_eog(time_s, electrodes, names, pairs, axes=None):
    """Monopolar eye electrodes (top) and the bipolar channels ``anode - cathode`` formed from them (bottom).

    Parameters
    ----------
    time_s : array-like, shape (T,)
        Sample times, s.
    electrodes : ndarray, shape (n_electrodes, T)
        The electrodes as recorded, µV.
    names : sequence of str
        Their labels, in row order.
    pairs : dict of str to (str, str)
        Bipolar channel name -> (anode, cathode), e.g. ``{"hEOG": ("LO", "RO")}``.
    axes : sequence of two matplotlib Axes, optional
        Drawn into; a new figure of two rows (shared time axis) otherwise.

    Returns
    -------
    ndarray of two Axes
    """
    time_s, electrodes, names = np.asarray(time_s), np.atleast_2d(electrodes), list(names)
    if electrodes.shape != (len(names), time_s.size):
        raise ValueError(f"plot_monopolar_eog: electrodes {electrodes.shape} do not match {len(names)} names "
                         f"x {time_s.size} times")
    missing = sorted({e for pair in pairs.values() for e in pair} - set(names))
    if missing:
        raise ValueError(f"plot_monopolar_eog: the pairs name electrodes {missing} that are not among {names}")
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True)
    axes = np.asarray(axes)
    for name, row in zip(names, electrodes):
        axes[0].plot(time_s, row, lw=0.8, label=name)
    for channel, (anode, cathode) in pairs.items():
        derived = electrodes[names.index(anode)] - electrodes[names.index(cathode)]  # (T,)
        axes[1].plot(time_s, derived, lw=0.8, label=f"{channel} = {anode} − {cathode}")
    axes[0].set(ylabel="µV", title="monopolar eye electrodes as stored (offsets + common drift)")
    axes[1].set(xlabel="time in the recording (s)", ylabel="µV",
                title="bipolar derivations (what the manifest asks for)")
    for ax in axes:
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the traces, not on them
    return axes
