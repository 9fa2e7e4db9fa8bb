"""A quick report of one run: a summary table and PNG plots of the spread.

``report(run_dir)`` reads ``steps.parquet`` and ``manifest.json`` and writes
``run_dir/report/``:

* ``summary.csv`` — one row per meme (see :func:`summary_table`);
* ``prevalence.png`` — per meme, the fraction of agents exposed, carrying and adopting
  after each step;
* ``transmissions.png`` — per meme, new transmissions and new adopters per step.

Plots use matplotlib's Agg canvas directly (no pyplot, no global backend switch). The
richer analysis lives in ``sim.analysis``; this is the fast look after a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sim.output import write_bytes_atomic


@dataclass(frozen=True)
class Report:
    """What :func:`report` produced.

    Attributes:
        run_dir: The run directory.
        summary: One row per meme (see :func:`summary_table`).
        figures: Paths of the PNG files written.
    """

    run_dir: Path
    summary: pl.DataFrame = field(repr=False)
    figures: tuple[Path, ...]

    def text(self) -> str:
        """The summary as an aligned plain-text table."""
        return format_table(self.summary)


def summary_table(steps: pl.DataFrame, n_agents: int) -> pl.DataFrame:
    """One row per meme: the final state and the course of the spread.

    Columns: meme_id, steps, final exposed / carriers / adopters (counts), final
    adopter share (of ``n_agents``), peak adopters and the first step it was reached,
    the first step with at least half the agents adopting (null if never), total
    transmissions and infections.
    """
    rows = []
    for (meme,), frame in steps.sort("step").group_by(["meme_id"], maintain_order=True):
        last = frame.row(-1, named=True)
        adopters = frame["adopters"]
        peak = int(adopters.max())
        half = frame.filter(pl.col("adopters") * 2 >= n_agents)["step"]
        rows.append(
            {
                "meme_id": meme,
                "steps": frame.height,
                "exposed": int(last["exposed"]),
                "carriers": int(last["carriers"]),
                "adopters": int(last["adopters"]),
                "adopter_share": round(int(last["adopters"]) / max(n_agents, 1), 4),
                "peak_adopters": peak,
                "peak_step": int(frame.filter(pl.col("adopters") == peak)["step"][0]),
                "half_step": int(half[0]) if len(half) else None,
                "transmissions": int(frame["transmissions"].sum()),
                "infections": int(frame["infections"].sum()),
            }
        )
    return pl.DataFrame(rows, schema_overrides={"half_step": pl.Int64})


def format_table(frame: pl.DataFrame) -> str:
    """A DataFrame as an aligned plain-text table (nulls shown as ``-``)."""
    header = frame.columns
    body = [["-" if v is None else str(v) for v in row] for row in frame.iter_rows()]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _save(figure, path: Path) -> Path:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return write_bytes_atomic(buffer.getvalue(), path)


def plot_prevalence(steps: pl.DataFrame, n_agents: int, path: Path) -> Path:
    """Per meme, the shares of agents exposed, carrying and adopting, against the step."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    memes = steps["meme_id"].unique(maintain_order=True).to_list()
    figure = Figure(figsize=(6.4, 2.6 * len(memes)), layout="constrained")
    axes = figure.subplots(len(memes), 1, squeeze=False)[:, 0]
    for ax, meme in zip(axes, memes, strict=True):
        frame = steps.filter(pl.col("meme_id") == meme).sort("step")
        for column in ("exposed", "carriers", "adopters"):
            ax.plot(frame["step"].to_numpy(), frame[column].to_numpy() / n_agents, label=column)
        ax.set_title(f"meme {meme}")
        ax.set_ylabel("share of agents")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="upper left", fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("step")
    return _save(figure, path)


def plot_transmissions(steps: pl.DataFrame, path: Path) -> Path:
    """Per meme, new transmissions and new adopters in each step."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    for (meme,), frame in steps.sort("step").group_by(["meme_id"], maintain_order=True):
        top.plot(frame["step"].to_numpy(), frame["transmissions"].to_numpy(), label=meme)
        bottom.plot(frame["step"].to_numpy(), frame["new_adopters"].to_numpy(), label=meme)
    top.set_ylabel("transmissions")
    top.set_title("transmissions per step")
    bottom.set_ylabel("new adopters")
    bottom.set_xlabel("step")
    top.legend(fontsize="small")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(figure, path)


def report(run_dir: str | Path) -> Report:
    """Summarise a finished run and write ``run_dir/report/`` (see the module docstring).

    Raises:
        FileNotFoundError: The run directory has no ``steps.parquet`` (not finished: resume
            it first) or no ``manifest.json``.
    """
    run_dir = Path(run_dir)
    steps_path = run_dir / "steps.parquet"
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no manifest.json)")
    if not steps_path.is_file():
        raise FileNotFoundError(
            f"{run_dir}: no steps.parquet; the run has not finished (memespread resume {run_dir})"
        )
    manifest = json.loads(manifest_path.read_text())
    steps = pl.read_parquet(steps_path)
    n_agents = int(manifest.get("n_agents") or 1)
    summary = summary_table(steps, n_agents)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    write_bytes_atomic(summary.write_csv().encode(), out / "summary.csv")
    figures = (
        plot_prevalence(steps, n_agents, out / "prevalence.png"),
        plot_transmissions(steps, out / "transmissions.png"),
    )
    return Report(run_dir=run_dir, summary=summary, figures=figures)
