"""Linear centred kernel alignment (CKA): how similar two sets of features are.

Introduced in ``notebooks/03_student_alignment.ipynb``.

Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network Representations Revisited",
ICML 2019. For features ``X (n, p)`` and ``Y (n, q)`` of the same ``n`` examples, with every
column centred::

    CKA(X, Y) = ||Y^T X||_F^2 / ( ||X^T X||_F * ||Y^T Y||_F )

It lies in [0, 1], equals 1 for ``CKA(X, X)``, is invariant to orthogonal transforms and to
isotropic scaling of either side, and ``p`` and ``q`` may differ: the student's ``d``-wide
feature can be compared with the teacher's ``2d``-wide fused feature without an adapter.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_cka"]


def _as_matrix(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1])  # (..., p) -> (n, p): tokens count as examples


def linear_cka(x, y) -> float:
    """Linear CKA between two feature matrices of the same examples.

    Parameters
    ----------
    x : array or Tensor, shape (n, p) or (B, L, p)
    y : array or Tensor, shape (n, q) or (B, L, q)
        Leading axes are flattened into examples (with ``(B, L, .)`` every token is one).

    Returns
    -------
    float
        In [0, 1] (0 if either side is constant).
    """
    x, y = _as_matrix(x), _as_matrix(y)
    if len(x) != len(y):
        raise ValueError(f"x and y need the same examples, got {len(x)} and {len(y)}")
    x = x - x.mean(axis=0)  # (n, p), centred columns
    y = y - y.mean(axis=0)  # (n, q)
    cross = np.linalg.norm(y.T @ x) ** 2  # ||Y^T X||_F^2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0
