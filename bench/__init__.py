"""Benchmarks: scripts that print speed and hit-rate figures measured side by side.

Run each as ``python -m bench.NAME`` (or ``python bench/NAME.py`` where its docstring
says so); the README's "Benchmarks" section lists them with their goals.
"""
