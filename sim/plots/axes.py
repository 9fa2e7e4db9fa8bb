"""Drawing helpers the figures share: lines that stay visible, share and count axes.

A line's markers stay visible where it coincides with earlier lines; share axes run from
0 to 1; count axes start at 0 and have integer ticks; a frame splits into one part (one
line) per group, labelled by the group's values; a legend shows what each line draws
(:func:`line_legend`); a swept parameter along the x axis (:class:`ParameterAxis`) puts
numbers at their values and categories evenly apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from matplotlib import rcParams
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.container import Container
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from sim.plots.styles import CENSORED_MARKER, CENSORED_MARKER_WIDTH


def draw_line(
    ax: Axes, x: np.ndarray, y: np.ndarray, style: dict[str, Any], index: int, label: str | None
) -> Line2D:
    """One line whose markers still show where it coincides with earlier lines.

    On a long line the markers are offset by ``index``; on a short one (under 20 points,
    a marker at every point) later lines get smaller markers, so a coinciding point shows
    each line's marker inside the earlier one's (white marker edges keep them apart when
    the lines share a colour).
    """
    every = max(1, len(x) // 10)
    (line,) = ax.plot(
        x,
        y,
        label=label,
        markevery=(index % every, every),
        markersize=5 if every > 1 else max(10 - 4.5 * index, 3),
        markeredgecolor="white",
        markeredgewidth=0.8,
        zorder=3 + index if style.get("linewidth", 2) < 4 else 2,
        clip_on=False,
        **style,
    )
    return line


def draw_censored(ax: Axes, x: np.ndarray, y: np.ndarray, colour: str) -> Line2D:
    """Upward arrows at ``(x, y)``: a value beyond the axis (censored at ``y``).

    Call it only with at least one point: an empty unclipped line counts as a point at
    (0, 0) pixels, and the layout would shrink the axes to take it in.
    """
    (arrows,) = ax.plot(
        x,
        y,
        linestyle="none",
        marker=CENSORED_MARKER,
        markeredgewidth=CENSORED_MARKER_WIDTH,
        markersize=14,
        color=colour,
        clip_on=False,
    )
    return arrows


def note_at_floor(ax: Axes, x: float, text: str, index: int, colour: str) -> None:
    """A small note at the bottom of the axes at data ``x`` (one row per line ``index``).

    For a point with no value to draw ("never", "undefined").
    """
    ax.annotate(
        text,
        (x, 0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 3 + 9 * index),  # stacked: one row per line
        textcoords="offset points",
        ha="center",
        fontsize=7,
        color=colour,
    )


@dataclass(frozen=True)
class LineEntry:
    """A line's legend entry: what is drawn of it.

    Attributes:
        text: The entry's text (the line's label, and e.g. "(never)").
        colour: The line's colour.
        handle: What the line draws (its line and markers, its arrows); None for a line
            drawn only as notes (:func:`note_at_floor`), whose entry then has no line or
            marker and its text in the line's colour, as its notes are.
    """

    text: str
    colour: str
    handle: Artist | Container | None = None


def line_legend(ax: Axes, entries: Sequence[LineEntry], title: str) -> Legend:
    """The legend of ``ax``: one entry per line, in order, showing what each draws."""
    legend = ax.legend(
        [Line2D([], [], linestyle="none") if e.handle is None else e.handle for e in entries],
        [e.text for e in entries],
        title=title,
        fontsize="small",
    )
    for entry, text in zip(entries, legend.get_texts(), strict=True):
        if entry.handle is None:
            text.set_color(entry.colour)
    return legend


def share_axis(ax: Axes) -> None:
    """A share axis: from 0 to 1, labelled "fraction of agents" unless it has a label."""
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(ax.get_ylabel() or "fraction of agents")


def count_axis(ax: Axes) -> None:
    """A count axis: starts at 0, integer ticks, and reaches at least 1.

    (Counts that are all 0 would otherwise get an axis up to about 0.05 with fractional
    ticks, which no count can take.)
    """
    ax.set_ylim(0, max(ax.get_ylim()[1], 1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def group_label(key: object) -> str:
    """A group's legend label: its values joined by ", " (``(0.1, "ring")`` -> ``0.1, ring``)."""
    if isinstance(key, tuple):
        return ", ".join(str(k) for k in key)
    return str(key)


def split_by(frame: pl.DataFrame, by: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """``frame`` split by the columns ``by``, in order of first appearance.

    With no column, the one part is the whole frame, keyed ``()``.
    """
    if not by:
        return [((), frame)]
    return list(frame.group_by(by, maintain_order=True))


def category_order(value: object) -> tuple[Any, ...]:
    """The sort key of a categorical axis value: numbers by value, the rest naturally.

    A value whose text parses as a number (``"10"``, ``"0.5"``, ``"-1"``, ``"1e-3"``)
    sorts by that number, before every other value; any other text sorts by its runs of
    digits as numbers and the text between them as text (``"a2"`` before ``"a10"``;
    text without digits in plain text order). Ties (``"2"`` and ``"02"``) go by the text.
    """
    text = str(value)
    if _NUMBER.fullmatch(text):
        return (0, float(text), (), text)
    parts = re.split(r"(\d+)", text)
    natural = tuple((0, int(p), "") if i % 2 else (1, 0, p) for i, p in enumerate(parts))
    return (1, 0.0, natural, text)


#: A number written in decimal (``nan`` and ``inf`` are words here, not numbers).
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class ParameterAxis:
    """A swept parameter along the x axis: where each of its values sits.

    A numeric parameter's values sit at their values, with a tick at each (0, 2, 5 are
    not evenly spaced, so slopes read true); a categorical one's (e.g. defense arms) sit
    evenly spaced in :func:`category_order`: labels that are numbers in numeric order
    (``2`` before ``10``), then the others in natural order (``a2`` before ``a10``,
    text without digits in text order). Several lines at the same values are drawn slightly
    apart (:meth:`offset`, by at most an eighth of the smallest gap between two values)
    so their error bars do not hide each other.

    Attributes:
        values: The parameter's distinct values, sorted.
        ordered: Whether they are numbers (an order a line may follow, a distance an
            axis may show); labels have neither.
        positions: The x position of each value, in the order of ``values``.
        unit: The smallest distance between two positions (1 with a single value).
    """

    values: tuple[Any, ...]
    ordered: bool
    positions: tuple[float, ...]
    unit: float

    @classmethod
    def of(cls, frame: pl.DataFrame, x: str) -> ParameterAxis:
        """The axis of column ``x`` of ``frame`` (numeric when its dtype is)."""
        ordered = frame.schema[x].is_numeric()
        distinct = frame[x].unique().to_list()
        values = tuple(sorted(distinct) if ordered else sorted(distinct, key=category_order))
        positions = tuple(float(v) if ordered else float(i) for i, v in enumerate(values))
        gaps = np.diff(positions)
        return cls(values, ordered, positions, float(gaps.min()) if len(gaps) else 1.0)

    def in_order(self, frame: pl.DataFrame, x: str) -> pl.DataFrame:
        """The rows of ``frame`` in the order of their ``x`` values along the axis."""
        return frame[np.argsort(self.at(frame[x].to_list()), kind="stable")]

    def at(self, values: Sequence[Any], index: int = 0, lines: int = 1) -> np.ndarray:
        """The x positions of ``values`` for the ``index``-th of ``lines`` lines."""
        where = dict(zip(self.values, self.positions, strict=True))
        offset = (index - (lines - 1) / 2) * (0.25 / max(lines, 1)) * self.unit
        return np.array([where[v] for v in values], dtype=float) + offset

    def draw(self, fig: Figure, ax: Axes, label: str) -> None:
        """Set the x limits, a tick labelled with its value at each value, and the label.

        Half a step beyond the ends, as between two categories; on a numeric axis also a
        tenth of the range, so values far apart do not sit on its edges. Every value's
        label is written; once the figure is complete, :meth:`fit_labels` arranges them
        so that none overlaps another.
        """
        if self.values:
            first, last = self.positions[0], self.positions[-1]
            pad = max(0.5 * self.unit, 0.1 * (last - first)) if self.ordered else 0.5
            ax.set_xlim(first - pad, last + pad)
        ax.set_xticks(list(self.positions), [str(v) for v in self.values])
        ax.set_xlabel(label)

    def fit_labels(self, fig: Figure, ax: Axes) -> str:
        """Arrange the tick labels so that each is drawn and none overlaps another.

        Call it once the figure is complete (legend, titles and captions set): it lays
        the figure out, measures the rendered labels and takes the first arrangement in
        which the boxes of every two labels lie at least :data:`LABEL_GAP` points apart:

        * ``"level"``: level under their ticks;
        * ``"rows"``, two of them: level, every label in the first row where it clears
          the labels already there, a lower label's tick line reaching down to it, so
          it still points at its value (only when no such line crosses a label);
        * ``"upright"``: turned by 90 degrees (a turned label's box is as wide as a line
          of text is high);
        * ``"rows"``, as many as needed (values closer than a line's height, e.g. 0.01,
          0.011 and 0.012 on an axis up to 0.5: tick lines may then cross labels).

        The figure grows taller by what the labels take beyond a level row, so the axes
        keep their height.

        Returns:
            The arrangement used.
        """
        height = fig.get_figheight()
        level = _label_depth(fig, ax)
        if _labels_apart(fig, ax):
            return "level"
        rows, crossed = _stagger(fig, ax)
        arrangement = "rows"
        if rows > 2 or crossed or not _labels_apart(fig, ax):
            _stagger(fig, ax, level=True)
            ax.tick_params(axis="x", labelrotation=90)
            arrangement = "upright"
            if not _labels_apart(fig, ax):
                ax.tick_params(axis="x", labelrotation=0)
                arrangement = "rows"
                for _ in range(3):  # rows change the layout's height, hardly its width
                    _stagger(fig, ax)
                    if _labels_apart(fig, ax):
                        break
        fig.set_figheight(height + (_label_depth(fig, ax) - level) / fig.dpi)
        return arrangement


#: Least distance (points) between two tick labels of a :class:`ParameterAxis`.
LABEL_GAP = 3.0


def _label_boxes(fig: Figure, ax: Axes) -> list[Any]:
    """The rendered extents (display units) of the x tick labels, after a layout."""
    fig.draw_without_rendering()
    return [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]


def _label_depth(fig: Figure, ax: Axes) -> float:
    """How far (display units) the x tick labels reach below the axes."""
    boxes = _label_boxes(fig, ax)
    return float(ax.bbox.y0 - min(b.y0 for b in boxes)) if boxes else 0.0


def _labels_apart(fig: Figure, ax: Axes) -> bool:
    """Whether every two x tick labels lie at least :data:`LABEL_GAP` apart."""
    gap = LABEL_GAP * fig.dpi / 72
    boxes = _label_boxes(fig, ax)
    return not any(_close(a, b, gap) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def _close(a: Bbox, b: Bbox, gap: float) -> bool:
    """Whether boxes ``a`` and ``b`` lie less than ``gap`` apart (display units)."""
    return a.x0 - gap < b.x1 and b.x0 - gap < a.x1 and a.y0 - gap < b.y1 and b.y0 - gap < a.y1


def stack_apart(fig: Figure, notes: Sequence[Annotation], fixed: Sequence[Annotation] = ()) -> None:
    """Move ``notes`` down so that they lie at least :data:`LABEL_GAP` apart.

    Call it once the figure is complete (after :meth:`ParameterAxis.fit_labels`): it
    lays the figure out and measures the rendered notes. Each note, in order, stays
    where it is if it clears the ``fixed`` notes (which do not move) and the notes
    before it, else moves down by its own height and a little more than the gap as
    often as needed: notes at (nearly) the same x, e.g. those of two lines drawn
    slightly apart, form a column under the points they label. Notes are moved by their
    offset (``xytext``, in points), so they stay apart at any dpi.
    """
    if not notes or len(notes) + len(fixed) < 2:
        return
    gap = LABEL_GAP * fig.dpi / 72
    fig.draw_without_rendering()
    placed = [note.get_window_extent() for note in fixed]
    for note in notes:
        box = note.get_window_extent()
        drop = 0.0
        while any(_close(box.translated(0, -drop), other, gap) for other in placed):
            # (by more than the gap: a row exactly a gap below may still count as close
            # after rounding, and the note would skip it)
            drop += box.height + 1.25 * gap
        if drop:
            x, y = note.xyann
            note.xyann = (x, y - drop * 72 / fig.dpi)
        placed.append(box.translated(0, -drop))


def _stagger(fig: Figure, ax: Axes, *, level: bool = False) -> tuple[int, bool]:
    """Put the x tick labels in rows, level: each in the first row it clears.

    With ``level``, back to one row.

    Returns:
        The number of rows, and whether a lower label's tick line crosses a label.
    """
    gap = LABEL_GAP * fig.dpi / 72
    pad, size = rcParams["xtick.major.pad"], rcParams["xtick.major.size"]
    ticks = ax.xaxis.get_major_ticks()
    for tick in ticks:  # back to one row, to measure each label where it sits level
        tick.set_pad(pad)
    if level:
        return 1, False
    fig.draw_without_rendering()
    ends: list[float] = []  # the right end of the last label of each row
    placed: list[tuple[int, Any]] = []  # each label's row and box
    for tick in ticks:
        box = tick.label1.get_window_extent()
        row = next((r for r, end in enumerate(ends) if box.x0 >= end + gap), len(ends))
        if row == len(ends):
            ends.append(box.x1)
        ends[row] = box.x1
        placed.append((row, box))
        # Each row lower by a label's height and the gap (points).
        drop = row * (box.height * 72 / fig.dpi + LABEL_GAP)
        tick.set_pad(pad + drop)
        tick.tick1line.set_markersize(size + drop)
    # A level label is centred on its tick.
    crossed = any(
        row < below and box.x0 - gap / 2 <= (other.x0 + other.x1) / 2 <= box.x1 + gap / 2
        for row, box in placed
        for below, other in placed
    )
    return len(ends), crossed
