"""Evaluation: tables from stored labels (``stored.py``), the VLM in the loop (``vlm_loop.py``),
the ranking metrics (``metrics.py``), tables (``tables.py``), benchmarks' own protocols
(``protocols.py``) and the chart (``chart.py``).

It stands beside ``training/`` and above ``labeling/`` and ``inference/``: no module here imports
``training/``, and ``metrics.py`` imports nothing of ours, so training validates with the same
metrics.
"""
