"""Plots for the notebooks. Every ``plot_*`` takes ``ax=None`` (or ``axes=None``) and returns the Axes.

Figures drawn from the synthetic data set carry a visible "synthetic data" mark
(:func:`mark_synthetic`), so that nobody mistakes them for results on real EEG; smoke runs carry
:func:`mark_smoke`. The package is split by subject; everything is re-exported here, so
``from kdlib import plotting; plotting.plot_folds(...)`` is the one way to call it.

- :mod:`kdlib.plotting.core`: the shared style and stamps, ratings, folds, traces, histories,
  scores, ablations, contrasts, sweeps.
- :mod:`kdlib.plotting.alignment`: notebook 03's KD-loss curves and the students' features mapped
  into the teacher's PCA plane (with their R²).
- :mod:`kdlib.plotting.overview`: notebook 00's diagram of the method (teacher branches, fusion,
  aligned student, teaching and feedback phases).
- :mod:`kdlib.plotting.feedback`: notebook 04's diagram of the two phases and the toy problem's
  decision boundaries (teacher before and after feedback, the student it taught).
- :mod:`kdlib.plotting.recordings`: notebook 01's stacked raw traces (scale bars, baseline) and the
  share of each trial's windows a fold tests (the leaky split's picture).
- :mod:`kdlib.plotting.architecture`: notebook 02's block diagram of the fusion teacher (branches,
  tokenisers, depths, gating pairs, fusion, head).
- :mod:`kdlib.plotting.custom`: notebook 06's monopolar eye electrodes and the bipolar EOG formed
  from them.
"""

from kdlib.plotting.core import *  # noqa: F401,F403
from kdlib.plotting.core import __all__ as _core_all

from kdlib.plotting.alignment import *  # noqa: F401,F403
from kdlib.plotting.alignment import __all__ as _alignment_all

from kdlib.plotting.overview import *  # noqa: F401,F403
from kdlib.plotting.overview import __all__ as _overview_all

from kdlib.plotting.feedback import *  # noqa: F401,F403
from kdlib.plotting.feedback import __all__ as _feedback_all

from kdlib.plotting.recordings import *  # noqa: F401,F403
from kdlib.plotting.recordings import __all__ as _recordings_all

from kdlib.plotting.architecture import *  # noqa: F401,F403
from kdlib.plotting.architecture import __all__ as _architecture_all

from kdlib.plotting.custom import *  # noqa: F401,F403
from kdlib.plotting.custom import __all__ as _custom_all

__all__ = (list(_core_all) + list(_alignment_all) + list(_overview_all) + list(_feedback_all)
           + list(_recordings_all) + list(_architecture_all) + list(_custom_all))
