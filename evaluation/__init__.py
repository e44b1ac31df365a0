"""Evaluation: tables from stored labels (``stored.py``), the VLM in the loop (``vlm_loop.py``),
the ranking metrics (``metrics.py``), tables (``tables.py``) and the chart (``chart.py``).

It stands above ``training/``, ``labeling/`` and ``inference/``; ``metrics.py`` imports nothing
of ours, so training validates with the same metrics.
"""
