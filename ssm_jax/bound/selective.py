"""Paper 3 (Honarpisheh et al.): spectral abscissa, the length-dependence terms of Theorem 3.3
and the norms of Assumptions 3.1-3.4 of a selective SSM.

Notation of the paper: ``s_A = max_i Re lambda_i(A)``; ``Delta_min = softplus(p - B_q B_u)``
and ``M_Delta = softplus(p + B_q B_u)`` bound the step size ``Delta_t = softplus(p + q.u_t)``
when ``||q|| <= B_q`` and ``||u_t|| <= B_u``; ``rho_A = (1 + e^{p - B_q B_u})^{s_A + eta} =
exp((s_A + eta) Delta_min)``; ``S_1 = sum_{t<T} rho_A^t`` and ``S_2 = sum_{t<T} t rho_A^t``;
the capacity ``C_F ~ sqrt(d) M_Delta B_w B_u^3 B_B B_C B_A S_2`` (up to constants and
logarithmic factors, Table 1's ``d^{1/2}`` and ``B_u^4`` with one ``B_u`` inside ``M_Delta``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

# Below this |T log rho| the closed forms of S_1, S_2 lose digits to cancellation; a Taylor
# series in x = log rho (3 terms, relative error < (xT)^3 / 15) is used instead.
_SERIES_BELOW = 1e-3


def spectral_abscissa(A) -> float:
    """``max_i Re lambda_i(A)`` of a diagonal state matrix given by its diagonal entries.

    Args:
      A: any shape, real or complex: the diagonal entries (e.g. ``(d, N)``).
    """
    return float(np.max(np.real(np.asarray(A))))


def softplus(x: float) -> float:
    return float(np.logaddexp(0.0, x))


def decay_sums(rho: float, T: int) -> tuple:
    """``S_1 = sum_{t=0}^{T-1} rho^t`` and ``S_2 = sum_{t=0}^{T-1} t rho^t`` in closed form.

    Exact and finite at ``rho = 1`` (``S_1 = T``, ``S_2 = T (T - 1) / 2``) and near it (series
    in ``log rho``); ``inf`` only where the sum itself overflows float64.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    x = math.log(rho)
    s1_0, s2_0 = float(T), T * (T - 1) / 2.0
    if abs(x * T) < _SERIES_BELOW:
        sum_t2 = (T - 1) * T * (2 * T - 1) / 6.0
        sum_t3 = s2_0 ** 2
        sum_t4 = (T - 1) * T * (2 * T - 1) * (3 * (T - 1) ** 2 + 3 * (T - 1) - 1) / 30.0
        S1 = s1_0 + x * s2_0 + x * x / 2 * sum_t2
        S2 = s2_0 + x * sum_t2 + x * x / 2 * sum_t3 + x ** 3 / 6 * sum_t4
        return S1, S2
    try:
        em1, emT = math.expm1(x), math.expm1(T * x)
    except OverflowError:
        return math.inf, math.inf
    S1 = emT / em1
    # S_2 = d S_1 / dx = [T e^{Tx} (e^x - 1) - (e^{Tx} - 1) e^x] / (e^x - 1)^2
    S2 = (T * (emT + 1.0) * em1 - emT * (em1 + 1.0)) / (em1 * em1)
    return S1, S2


def selective_bound_terms(s_A: float, p: float, B_q: float, B_u: float, T: int,
                          eta: float = 0.0, norms: Mapping | None = None) -> dict:
    """The length-dependence terms of Theorem 3.3.

    Args:
      s_A: spectral abscissa of A.
      p: the step-size bias.
      B_q, B_u: bounds on ``||q||_2`` and ``max_t ||u_t||_2``.
      T: sequence length.
      eta: the theorem's small margin (``s_A + eta != 0``); 0 evaluates the limit.
      norms: optional mapping with ``d``, ``B_w``, ``B_B``, ``B_C``, ``B_A`` (e.g. from
        :func:`selective_norms`); with it, ``C_F`` is included.

    Returns:
      dict with ``Delta_min``, ``M_Delta``, ``rho_A``, ``S_1``, ``S_2`` and (with ``norms``)
      ``C_F = sqrt(d) M_Delta B_w B_u^3 B_B B_C B_A S_2`` (up to constants and log factors).
    """
    Delta_min = softplus(p - B_q * B_u)
    M_Delta = softplus(p + B_q * B_u)
    log_rho = (s_A + eta) * Delta_min  # rho_A = (1 + e^{p - B_q B_u})^{s_A + eta}
    rho = math.exp(log_rho) if log_rho < 700 else math.inf
    S_1, S_2 = decay_sums(rho, int(T)) if math.isfinite(rho) else (math.inf, math.inf)
    out = dict(Delta_min=Delta_min, M_Delta=M_Delta, rho_A=rho, S_1=S_1, S_2=S_2)
    if norms is not None:
        out["C_F"] = capacity(M_Delta, S_2, B_u, norms)
    return out


def capacity(M_Delta: float, S_2: float, B_u: float, norms: Mapping) -> float:
    """``C_F`` of Theorem 3.3 up to constants and log factors:
    ``sqrt(d) M_Delta B_w B_u^3 B_B B_C B_A S_2``."""
    return float(math.sqrt(norms["d"]) * M_Delta * norms["B_w"] * B_u ** 3 * norms["B_B"]
                 * norms["B_C"] * norms["B_A"] * S_2)


def _spectral(M) -> float:
    M = np.asarray(M, np.float64)
    return float(np.linalg.norm(M.reshape(M.shape[0], -1), 2)) if M.ndim > 1 else float(np.linalg.norm(M))


def selective_norms(layer_params: Mapping, head_kernel=None, embedding=None, inputs=None) -> dict:
    """The norms of Assumptions 3.1-3.4 of a paper-form selective layer.

    Args:
      layer_params: the layer's parameters: ``A (d, N)``, ``W_B (N, d)``, ``W_C (N, d)``,
        ``q (d,)``, ``p (1,)``.
      head_kernel: the read-out ``w``: ``(d,)``, ``(d, 1)`` or ``(d, K)`` (K classes); optional.
      embedding: ``(vocab, d)`` token embedding; ``B_u`` is its largest row norm (what the
        paper's code logs); optional.
      inputs: ``(..., L, d)`` layer inputs; ``max_u`` is their largest ``||u_t||_2``; optional.

    Returns:
      dict: ``d``, ``N``, ``s_A``, ``L_p = |p|``, ``p``, ``B_q = ||q||_2``, ``M_q = ||q||_1``,
      ``B_B = ||W_B||_2`` (spectral), ``B_B_F`` (Frobenius, what the paper's logs call
      ``||W_B||_2``), ``M_B = ||W_B||_{1,1}``, the same for ``W_C``, ``B_A = ||A_c||_2 =
      max|A|`` (A_c is diagonal), ``M_A = ||A_c||_{2,1} = sum|A|``, and when given ``B_w``
      (spectral) / ``M_w`` (entrywise l1) of the head, ``B_u`` and ``max_u``.
    """
    A = np.asarray(layer_params["A"], np.float64)
    WB = np.asarray(layer_params["W_B"], np.float64)
    WC = np.asarray(layer_params["W_C"], np.float64)
    q = np.asarray(layer_params["q"], np.float64)
    p = float(np.asarray(layer_params["p"], np.float64).reshape(-1)[0])
    out = dict(d=A.shape[0], N=A.shape[1], s_A=spectral_abscissa(A), p=p, L_p=abs(p),
               B_q=float(np.linalg.norm(q)), M_q=float(np.abs(q).sum()),
               B_B=_spectral(WB), B_B_F=float(np.linalg.norm(WB)), M_B=float(np.abs(WB).sum()),
               B_C=_spectral(WC), B_C_F=float(np.linalg.norm(WC)), M_C=float(np.abs(WC).sum()),
               B_A=float(np.abs(A).max()), M_A=float(np.abs(A).sum()))
    if head_kernel is not None:
        w = np.asarray(head_kernel, np.float64)
        out["B_w"] = _spectral(w)
        out["M_w"] = float(np.abs(w).sum())
    if embedding is not None:
        out["B_u"] = float(np.linalg.norm(np.asarray(embedding, np.float64), axis=-1).max())
    if inputs is not None:
        out["max_u"] = float(np.linalg.norm(np.asarray(inputs, np.float64), axis=-1).max())
    return out


def model_bound_report(params: Mapping, layers: Mapping, T: int, eta: float = 0.0,
                       inputs=None) -> dict:
    """Norms and bound terms of the paper-form selective layers of a ``SequenceModel``.

    Args:
      params: the model's ``params`` tree (``encoder/embedding``, ``head/kernel`` read when
        present).
      layers: ``{path: layer class}`` (:func:`ssm_jax.layers.find_layers`).
      T: sequence length of the bound.
      eta: see :func:`selective_bound_terms`.
      inputs: optional layer inputs for ``max_u``.

    Returns:
      flat dict of the first paper-form selective layer's norms and terms (``B_u`` is the
      embedding's largest row norm, else ``max_u``); {} when the model has none.
    """
    from ssm_jax.layers.base import get_params

    for path, cls in layers.items():
        lp = get_params(params, path)
        if getattr(cls, "layer_name", "") != "selective" or "A" not in lp:
            continue
        emb = params.get("encoder", {}).get("embedding")
        head = params.get("head", {}).get("kernel")
        norms = selective_norms(lp, head, emb, inputs)
        B_u = norms.get("B_u", norms.get("max_u"))
        if B_u is None or "B_w" not in norms:
            return norms
        terms = selective_bound_terms(norms["s_A"], norms["p"], norms["B_q"], B_u, T, eta, norms)
        return {**norms, **terms}
    return {}


__all__ = ["capacity", "decay_sums", "model_bound_report", "selective_bound_terms",
           "selective_norms", "spectral_abscissa"]
