"""Observed prevalence against a fitted SI / SIS / SIR curve."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sim.analysis.fits import FitResult
from sim.plots.axes import share_axis


def fitted_curve(fit: FitResult, *, title: str | None = None) -> Figure:
    """Observed prevalence and the fitted model curve, with the fitted parameters.

    The share axis runs from 0 to 1 as in every share plot, so a fit to a curve that
    hardly moved (a run where almost no agent adopted) does not fill the figure.
    """
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    t = fit.t
    k = len(t)
    ax.plot(t, fit.observed[:k], "o", markersize=3, label="observed")
    ax.plot(t, fit.fitted[:k], "-", label=f"{fit.model} fit")
    if len(fit.observed) > k:  # SIR with removed
        ax.plot(t, fit.observed[k:], "s", markersize=3, label="removed (observed)")
        ax.plot(t, fit.fitted[k:], "--", label="removed (fit)")
    params = ", ".join(f"{name}={v:.3g}" for name, v in fit.params.items())
    r2 = "n/a" if fit.r2 is None else f"{fit.r2:.3f}"
    ax.set_title(title or f"{fit.model}: {params}\nR²={r2}, RMSE={fit.rmse:.3g}", fontsize=9)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("fraction of agents")
    share_axis(ax)
    ax.legend(fontsize="small")
    return fig
