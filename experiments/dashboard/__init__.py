"""The live dashboard: ``memespread dashboard RUN_DIR | CONFIG`` (Mesa's SolaraViz).

* :mod:`experiments.dashboard.view` reads what the page shows from a run's tables (a
  finished run directory, or a live model's tables so far);
* :mod:`experiments.dashboard.models` holds the two Mesa models the page steps: a
  replay of a finished run and a live run;
* :mod:`experiments.dashboard.app` is the Solara page (needs the ``dashboard`` extra);
* :mod:`experiments.dashboard.server` checks the target and serves the page.
"""
