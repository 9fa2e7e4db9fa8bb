"""Analysis of spread over run and sweep directories (polars in, polars out).

Modules, one concept each:

* :mod:`sim.analysis.loading` — read run directories and sweep directories;
* :mod:`sim.analysis.prevalence` — prevalence, incidence, times to 10/50/90 %, final size;
* :mod:`sim.analysis.infections` — when and from whom each agent was infected;
* :mod:`sim.analysis.reproduction` — R0, R_eff(t), generation intervals and the R0
  implied by the contagion rule;
* :mod:`sim.analysis.cascades` — transmission trees: depth, breadth, structural virality;
* :mod:`sim.analysis.mutation` — drift of carrying entries from the seeded statement;
* :mod:`sim.analysis.fits` — SI / SIS / SIR curve fits with goodness of fit;
* :mod:`sim.analysis.summary` — the scalar metrics of one run;
* :mod:`sim.analysis.comparison` — runs side by side (LLM vs contagion);
* :mod:`sim.analysis.aggregate` — replicate seeds with confidence intervals, sweeps.
* :mod:`sim.analysis.values` — value-drift questionnaires: dimension scores over time and
  the effect of memory (audit: with minus without memories).

Importing this package imports nothing heavy; import the modules you need.
"""
