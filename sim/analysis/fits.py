"""SI, SIS and SIR curve fits to a run's prevalence, with fitted rates and goodness of fit.

All models are mean-field (homogeneous mixing) over ``n`` agents; ``i`` is a fraction of
agents, time is in steps. Parameters are fitted by bounded least squares
(:func:`scipy.optimize.least_squares`) on the observed fractions.

* ``si_discrete`` — the chain-binomial SI mean: every step each susceptible escapes each
  of the ``n i`` infected independently with probability ``1 - beta``, so
  ``i(t+1) = i(t) + (1 - i(t)) (1 - (1 - beta)^(n i(t)))``. ``beta`` is the per-contact,
  per-step transmission probability: the contagion policy's ``beta`` on a complete graph
  where every adopter's entry reaches every agent. Parameters ``beta``, ``i0`` (the
  fraction at the first observed step, free so that the stochastic start does not bias
  ``beta``).
* ``si`` — the continuous logistic ``di/dt = beta n i (1 - i)``:
  ``i(t) = 1 / (1 + (1/i0 - 1) exp(-beta n (t - t0)))``. Parameters ``beta`` (contact
  rate per step), ``i0``; ``rate = beta n``.
* ``sis`` — ``di/dt = beta n i (1 - i) - gamma i`` (closed form, endemic level
  ``1 - gamma / (beta n)``). Parameters ``beta``, ``gamma``, ``i0``.
* ``sir`` — ``ds/dt = -beta n s i``, ``di/dt = beta n s i - gamma i``,
  ``dr/dt = gamma i`` (integrated with :func:`scipy.integrate.solve_ivp`), fitted to the
  infectious fraction (and the removed fraction when given). Parameters ``beta``,
  ``gamma``, ``i0``; ``r0 = beta n / gamma``.

Identifiability: a curve is fitted only when it moved. The fitted observations (the
infectious fraction for ``sir``) must take at least :data:`MIN_LEVELS` (3) distinct
non-zero values, i.e. the count of agents in the state changed at least twice while it
was positive. A curve that stayed at zero (no adopter), stayed at its seeds, or made a
single jump carries no information on the rates: every model would "fit" it with
arbitrary parameters (a flat zero curve gave an SIR "R0 1.22, R² 0.65"). Such a curve
raises :class:`NotIdentifiableError` (a :class:`ValueError`), with no parameters.

Goodness of fit on the fitted observations: ``rmse = sqrt(mean(residual^2))`` and
``r2 = 1 - SS_res / SS_tot`` (null when the observations are constant).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

ModelName = Literal["si_discrete", "si", "sis", "sir"]
MODELS: tuple[str, ...] = ("si_discrete", "si", "sis", "sir")

#: The fewest distinct non-zero values a curve must take to be fitted (see the module
#: docstring): as many as the largest model has free parameters (``sis``, ``sir``).
MIN_LEVELS = 3


class NotIdentifiableError(ValueError):
    """A prevalence curve that did not move enough to identify any model's parameters.

    Raised instead of a fit when the curve takes fewer than :data:`MIN_LEVELS` distinct
    non-zero values (no adopters, only the seeds, or a single jump).
    """


@dataclass(frozen=True)
class FitResult:
    """A fitted epidemic curve.

    Attributes:
        model: One of :data:`MODELS`.
        params: Fitted parameters by name (and derived ones, e.g. ``rate``, ``r0``).
        r2: Coefficient of determination (None for constant observations).
        rmse: Root mean squared error, in fractions of agents.
        n_agents: The population size used.
        t: Steps of the observations.
        observed: Observed fractions (for ``sir`` with removed: infectious then removed).
        fitted: Fitted fractions, aligned with ``observed``.
    """

    model: str
    params: dict[str, float]
    r2: float | None
    rmse: float
    n_agents: int
    t: np.ndarray = field(repr=False)
    observed: np.ndarray = field(repr=False)
    fitted: np.ndarray = field(repr=False)

    def as_row(self) -> dict[str, float | str | None]:
        """Parameters and goodness of fit as one flat dict."""
        return {"model": self.model, **self.params, "r2": self.r2, "rmse": self.rmse}


def _check(
    t: np.ndarray, y: np.ndarray, n_agents: int, *, moved: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validated observations; ``moved`` also requires :data:`MIN_LEVELS` non-zero levels."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.ndim != 1 or t.shape != y.shape:
        raise ValueError(f"t and prevalence must be 1-D of equal length, got {t.shape}, {y.shape}")
    if len(t) < 3:
        raise ValueError(f"prevalence: {len(t)} observations; need at least 3 to fit")
    if n_agents < 1:
        raise ValueError(f"n_agents = {n_agents}: must be a positive integer")
    if np.any((y < 0) | (y > 1)):
        raise ValueError("prevalence: values must be fractions in [0, 1]")
    levels = np.unique(y[y > 0])
    if moved and len(levels) < MIN_LEVELS:
        shown = ", ".join(f"{v:.4g}" for v in levels) or "none"
        raise NotIdentifiableError(
            f"prevalence: not identifiable: {len(levels)} distinct non-zero value(s) "
            f"({shown}) over {len(y)} steps; a fit needs at least {MIN_LEVELS} (the curve must "
            "change at least twice while positive), so no parameters are estimated"
        )
    return t, y


def _goodness(observed: np.ndarray, fitted: np.ndarray) -> tuple[float | None, float]:
    residual = observed - fitted
    rmse = float(np.sqrt(np.mean(residual**2)))
    ss_tot = float(np.sum((observed - observed.mean()) ** 2))
    r2 = None if ss_tot == 0 else 1.0 - float(np.sum(residual**2)) / ss_tot
    return r2, rmse


def si_discrete_curve(t: np.ndarray, beta: float, i0: float, n_agents: int) -> np.ndarray:
    """The chain-binomial SI mean at integer steps ``t`` (``i(t[0]) = i0``)."""
    t = np.asarray(t, dtype=float)
    steps = np.rint(t - t[0]).astype(int)
    out = np.empty(steps.max() + 1)
    i = i0
    for s in range(len(out)):
        out[s] = i
        i = i + (1 - i) * (1 - (1 - beta) ** (n_agents * i))
    return out[steps]


def si_curve(t: np.ndarray, beta: float, i0: float, n_agents: int) -> np.ndarray:
    """The continuous logistic SI solution with ``i(t[0]) = i0``."""
    t = np.asarray(t, dtype=float)
    return 1.0 / (1.0 + (1.0 / i0 - 1.0) * np.exp(-beta * n_agents * (t - t[0])))


def sis_curve(t: np.ndarray, beta: float, gamma: float, i0: float, n_agents: int) -> np.ndarray:
    """The continuous SIS solution with ``i(t[0]) = i0``."""
    t = np.asarray(t, dtype=float)
    growth = beta * n_agents - gamma
    if abs(growth) < 1e-12:
        return i0 / (1.0 + beta * n_agents * i0 * (t - t[0]))
    level = growth / (beta * n_agents)
    return level / (1.0 + (level / i0 - 1.0) * np.exp(-growth * (t - t[0])))


def sir_curves(
    t: np.ndarray, beta: float, gamma: float, i0: float, n_agents: int
) -> tuple[np.ndarray, np.ndarray]:
    """Infectious and removed fractions of the SIR ODE with ``i(t[0]) = i0``, ``r = 0``."""
    from scipy.integrate import solve_ivp

    t = np.asarray(t, dtype=float)
    rate = beta * n_agents

    def rhs(_: float, y: np.ndarray) -> list[float]:
        s, i, _r = y
        return [-rate * s * i, rate * s * i - gamma * i, gamma * i]

    sol = solve_ivp(
        rhs, (t[0], t[-1]), [1.0 - i0, i0, 0.0], t_eval=t, rtol=1e-8, atol=1e-10, method="LSODA"
    )
    return sol.y[1], sol.y[2]


def _least_squares(
    residual: Callable[[np.ndarray], np.ndarray],
    x0: list[float],
    bounds: tuple[list[float], list[float]],
) -> OptimizeResult:
    from scipy.optimize import least_squares

    return least_squares(residual, x0, bounds=bounds, method="trf", x_scale="jac")


def _initial_i0(y: np.ndarray, n_agents: int) -> float:
    return float(np.clip(y[0], 1.0 / (2 * n_agents), 0.99))


def _initial_rate(t: np.ndarray, y: np.ndarray) -> float:
    """Slope of logit(i) over the 5-95 % range (fallback 0.5 per step)."""
    ok = (y > 0.05) & (y < 0.95)
    if ok.sum() >= 2:
        slope = np.polyfit(t[ok], np.log(y[ok] / (1 - y[ok])), 1)[0]
        if slope > 0:
            return float(slope)
    return 0.5


def fit_si_discrete(t: np.ndarray, prevalence: np.ndarray, n_agents: int) -> FitResult:
    """Fit the chain-binomial SI mean (parameters ``beta``, ``i0``; see the module docstring)."""
    t, y = _check(t, prevalence, n_agents)
    rate = _initial_rate(t, y)
    beta0 = float(np.clip((np.exp(rate) - 1) / n_agents, 1e-6, 0.99))
    floor = 1.0 / (10 * n_agents)
    i0 = float(np.clip(_initial_i0(y, n_agents), floor * 2, 0.99))

    def residual(x: np.ndarray) -> np.ndarray:
        return si_discrete_curve(t, x[0], x[1], n_agents) - y

    result = _least_squares(residual, [beta0, i0], ([1e-9, floor], [1.0, 1.0]))
    beta, i0 = (float(v) for v in result.x)
    fitted = si_discrete_curve(t, beta, i0, n_agents)
    r2, rmse = _goodness(y, fitted)
    return FitResult("si_discrete", {"beta": beta, "i0": i0}, r2, rmse, n_agents, t, y, fitted)


def fit_si(t: np.ndarray, prevalence: np.ndarray, n_agents: int) -> FitResult:
    """Fit the continuous logistic SI (``beta``, ``i0``; derived ``rate = beta n``)."""
    t, y = _check(t, prevalence, n_agents)
    floor = 1.0 / (10 * n_agents)
    x0 = [_initial_rate(t, y) / n_agents, float(np.clip(y[0], floor * 2, 0.99))]

    def residual(x: np.ndarray) -> np.ndarray:
        return si_curve(t, x[0], x[1], n_agents) - y

    result = _least_squares(residual, x0, ([1e-12, floor], [np.inf, 1.0]))
    beta, i0 = (float(v) for v in result.x)
    fitted = si_curve(t, beta, i0, n_agents)
    r2, rmse = _goodness(y, fitted)
    params = {"beta": beta, "i0": i0, "rate": beta * n_agents}
    return FitResult("si", params, r2, rmse, n_agents, t, y, fitted)


def fit_sis(t: np.ndarray, prevalence: np.ndarray, n_agents: int) -> FitResult:
    """Fit the continuous SIS (``beta``, ``gamma``, ``i0``; derived ``endemic``)."""
    t, y = _check(t, prevalence, n_agents)
    floor = 1.0 / (10 * n_agents)
    rate = _initial_rate(t, y)
    x0 = [rate / n_agents, 0.01, float(np.clip(y[0], floor * 2, 0.99))]

    def residual(x: np.ndarray) -> np.ndarray:
        return sis_curve(t, x[0], x[1], x[2], n_agents) - y

    result = _least_squares(residual, x0, ([1e-12, 0.0, floor], [np.inf, np.inf, 1.0]))
    beta, gamma, i0 = (float(v) for v in result.x)
    fitted = sis_curve(t, beta, gamma, i0, n_agents)
    r2, rmse = _goodness(y, fitted)
    params = {
        "beta": beta,
        "gamma": gamma,
        "i0": i0,
        "rate": beta * n_agents,
        "endemic": max(0.0, 1.0 - gamma / (beta * n_agents)),
    }
    return FitResult("sis", params, r2, rmse, n_agents, t, y, fitted)


def fit_sir(
    t: np.ndarray,
    infectious: np.ndarray,
    n_agents: int,
    removed: np.ndarray | None = None,
) -> FitResult:
    """Fit the SIR ODE to the infectious (and optionally removed) fractions.

    Returns:
        A fit with ``beta``, ``gamma``, ``i0`` and derived ``rate = beta n``,
        ``r0 = beta n / gamma`` (inf when gamma is 0).
    """
    t, y = _check(t, infectious, n_agents)
    r_obs = None if removed is None else _check(t, removed, n_agents, moved=False)[1]
    floor = 1.0 / (10 * n_agents)
    x0 = [_initial_rate(t, y) / n_agents, 0.05, float(np.clip(y[0], floor * 2, 0.99))]

    def model(x: np.ndarray) -> np.ndarray:
        i, r = sir_curves(t, x[0], x[1], x[2], n_agents)
        return i if r_obs is None else np.concatenate([i, r])

    observed = y if r_obs is None else np.concatenate([y, r_obs])
    result = _least_squares(
        lambda x: model(x) - observed, x0, ([1e-12, 0.0, floor], [np.inf, np.inf, 1.0])
    )
    beta, gamma, i0 = (float(v) for v in result.x)
    fitted = model(result.x)
    r2, rmse = _goodness(observed, fitted)
    params = {
        "beta": beta,
        "gamma": gamma,
        "i0": i0,
        "rate": beta * n_agents,
        "r0": beta * n_agents / gamma if gamma > 0 else float("inf"),
    }
    return FitResult("sir", params, r2, rmse, n_agents, t, observed, fitted)


def fit_prevalence(
    prev: pl.DataFrame,
    n_agents: int,
    *,
    model: str = "si_discrete",
    meme_id: str | None = None,
    state: str = "adopter",
) -> FitResult:
    """Fit a model to one meme's prevalence curve from :func:`sim.analysis.prevalence.prevalence`.

    Observations start at the first step with a positive prevalence. For ``sir``, the
    infectious fraction is the current ``adopter`` prevalence and the removed fraction is
    ``infected`` (ever) minus ``adopter`` (agents that held the meme and dropped it).

    Args:
        prev: Long prevalence table.
        n_agents: Number of agents.
        model: One of :data:`MODELS`.
        meme_id: The meme (default: the only one; required when there are several).
        state: The state whose prevalence is fitted (si, si_discrete, sis).

    Raises:
        NotIdentifiableError: The curve takes fewer than :data:`MIN_LEVELS` distinct
            non-zero values (e.g. no agent ever adopted the meme): no parameters.
        ValueError: An unknown model or meme, or fewer than 3 observations.
    """
    if model not in MODELS:
        raise ValueError(f"model = {model!r}: must be one of {list(MODELS)}")
    memes = prev["meme_id"].unique().sort().to_list()
    if meme_id is None:
        if len(memes) != 1:
            raise ValueError(f"meme_id: required when the run has several memes {memes}")
        meme_id = memes[0]
    elif meme_id not in memes:
        raise ValueError(f"meme_id = {meme_id!r}: not in the run; memes are {memes}")
    sub = prev.filter(pl.col("meme_id") == meme_id)

    def series(name: str) -> tuple[np.ndarray, np.ndarray]:
        s = sub.filter(pl.col("state") == name).sort("step")
        return s["step"].to_numpy().astype(float), s["prevalence"].to_numpy().astype(float)

    t, y = series("adopter" if model == "sir" else state)
    start = int(np.argmax(y > 0)) if np.any(y > 0) else 0
    if model == "sir":
        _, ever = series("infected")
        removed = np.clip(ever - y, 0, 1)
        return fit_sir(t[start:], y[start:], n_agents, removed[start:])
    fitter = {"si_discrete": fit_si_discrete, "si": fit_si, "sis": fit_sis}[model]
    return fitter(t[start:], y[start:], n_agents)
