"""Heat maps of a value over two swept parameters, saying what each cell averages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def heatmap(
    frame: pl.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    title: str | None = None,
    fmt: str = ".2f",
    vrange: tuple[float, float] | None = None,
    never: str = "never",
    panel: str | None = None,
    averaged: Sequence[str] = (),
) -> Figure:
    """A heat map of ``value`` over two parameters: the mean over the rows of each cell.

    Cells are annotated with the mean and, when some rows of the cell have a null value
    (e.g. ``t50`` where 50 % was never reached), with how many rows have a value
    ("2/3"); the mean is over those. A cell whose every row is null is hatched and
    labelled ``never``, and a note under the figure says so. The title states how many
    rows each cell averages and over what, so rows of one run per cell are not mistaken
    for means, nor a mean over other parameters for a mean over seeds:

    * rows that differ only in ``seed``: "mean over 3 seeds per cell";
    * with ``averaged`` (e.g. the swept parameters on no axis and no panel): "mean over
      6 runs per cell, pooling seeds and graph.k";
    * rows of one seed sharing a cell without ``averaged`` naming what else differs:
      "mean over 6 rows per cell", and a note under the figure says that cells pool
      more than seeds.

    With ``panel``, one heat map per value of that column (e.g. a third swept
    parameter), side by side with one colour scale, instead of averaging over it.

    Args:
        frame: Long table with columns ``x``, ``y`` and ``value``.
        x: Column along the horizontal axis.
        y: Column along the vertical axis.
        value: Column to colour by.
        title: Figure title (default: the value column); what a cell averages is appended.
        fmt: Format of the annotated cell values.
        vrange: Colour scale limits. Default: ``(0, 1)`` when every value lies in
            [0, 1] (shares), else the values' range; either way fixed and stated in
            the colour bar label.
        never: Label of the cells where every row is null.
        panel: Column with one panel per value (None: one heat map).
        averaged: Columns besides ``seed`` that vary within a cell and are averaged
            over, named in the title.
    """
    keys = [x, y] + ([panel] if panel is not None else [])
    missing = [c for c in (*keys, value, *averaged) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {frame.columns}")
    if "meme_id" in frame.columns and "meme_id" not in keys and frame["meme_id"].n_unique() > 1:
        raise ValueError(
            f"the frame holds {frame['meme_id'].n_unique()} memes: a cell would average "
            "over memes; filter one meme first (pl.col('meme_id') == ...)"
        )
    seeded = "seed" in frame.columns and "seed" not in keys
    cells = frame.group_by(keys).agg(
        pl.col(value).cast(pl.Float64).mean().alias("mean"),
        pl.col(value).is_not_null().sum().alias("valid"),
        pl.len().alias("rows"),
        (pl.col("seed").n_unique() if seeded else pl.len()).alias("seeds"),
    )
    xs = sorted(cells[x].unique().to_list())
    ys = sorted(cells[y].unique().to_list())
    panels = sorted(cells[panel].unique().to_list()) if panel is not None else [None]
    finite = cells["mean"].drop_nulls().drop_nans().to_numpy()
    if vrange is None:
        if len(finite) == 0 or (finite.min() >= 0 and finite.max() <= 1):
            vrange = (0.0, 1.0)
        elif finite.min() >= 0:
            vrange = (0.0, float(finite.max()))
        else:
            vrange = (float(finite.min()), float(max(finite.max(), finite.min() + 1)))
    width = (1.25 * len(xs) + 1.2) * len(panels) + 1.6
    fig = Figure(figsize=(width, 0.8 * len(ys) + 2.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    any_never = False
    for ax, value_of_panel in zip(axes, panels, strict=True):
        part = cells if panel is None else cells.filter(pl.col(panel) == value_of_panel)
        image, never_here = _heat_panel(ax, part, x, y, xs, ys, vrange, fmt, never)
        any_never = any_never or never_here
        if panel is not None:
            ax.set_title(f"{panel} = {value_of_panel}", fontsize="medium")
    fig.colorbar(image, ax=list(axes), label=f"{value} (scale {vrange[0]:.3g} to {vrange[1]:.3g})")
    per_cell = "/".join(str(k) for k in sorted(set(cells["rows"].to_list())))
    pools_more = seeded and bool((cells["rows"] > cells["seeds"]).any())
    if averaged:
        pooled = ", ".join((["seeds"] if seeded else []) + list(averaged))
        word = "runs"
        what = f"mean over {per_cell} runs per cell, pooling {pooled}"
    elif per_cell == "1":
        word, what = "rows", "one row per cell, no averaging"
    else:
        word = "seeds" if seeded and not pools_more else "rows"
        what = f"mean over {per_cell} {word} per cell"
    heading = f"{title or value}\n({what})"
    if panel is None:
        axes[0].set_title(heading, fontsize="medium")
    else:
        fig.suptitle(heading, fontsize="medium")
    notes = []
    if any_never:
        notes.append(f"hatched '{never}': {value} is null in every {word[:-1]} of the cell")
    if ((cells["valid"] > 0) & (cells["valid"] < cells["rows"])).any():
        notes.append(f"k/n: mean over the k of n {word} with a value")
    if pools_more and not averaged:
        notes.append("cells pool rows of the same seed: something besides the seed differs")
    if notes:
        fig.supxlabel("; ".join(notes), fontsize=7)
    return fig


def _heat_panel(
    ax: Axes,
    cells: pl.DataFrame,
    x: str,
    y: str,
    xs: list[Any],
    ys: list[Any],
    vrange: tuple[float, float],
    fmt: str,
    never: str,
) -> tuple[Any, bool]:
    """Draw one heat map of ``cells`` (x, y, mean, valid, rows) on ``ax``.

    Returns:
        The image (for the colour bar) and whether a cell was hatched as ``never``.
    """
    grid = np.full((len(ys), len(xs)), np.nan)
    valid = np.zeros((len(ys), len(xs)), dtype=int)
    rows = np.zeros((len(ys), len(xs)), dtype=int)
    for xv, yv, mean, k, m in cells.select(x, y, "mean", "valid", "rows").iter_rows():
        r, c = ys.index(yv), xs.index(xv)
        grid[r, c] = np.nan if mean is None else mean
        valid[r, c], rows[r, c] = k, m
    image = ax.imshow(
        grid, cmap="magma", aspect="auto", origin="lower", vmin=vrange[0], vmax=vrange[1]
    )
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    middle = (vrange[0] + vrange[1]) / 2
    any_never = False
    for (r, c), v in np.ndenumerate(grid):
        if rows[r, c] == 0:
            continue
        if np.isfinite(v):
            text = format(v, fmt)
            if valid[r, c] < rows[r, c]:
                text += f"\n{valid[r, c]}/{rows[r, c]}"
            colour = "black" if v > middle else "white"
            ax.text(c, r, text, ha="center", va="center", color=colour, fontsize=8)
        else:
            any_never = True
            ax.add_patch(_hatched_cell(c, r))
            ax.text(c, r, never, ha="center", va="center", color="black", fontsize=8)
    return image, any_never


def _hatched_cell(column: int, row: int) -> Rectangle:
    """A grey hatched square over one heat-map cell (a cell without any value)."""
    return Rectangle(
        (column - 0.5, row - 0.5),
        1,
        1,
        facecolor="#eeeeee",
        edgecolor="#999999",
        hatch="//",
        linewidth=0,
    )
