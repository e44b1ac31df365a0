"""The VLM runtime: the only room that knows VLM families.

Loading (``loading.py``), rendering and letter ids (``render.py``), rows (``rows.py``), one-forward
scoring and generation (``runtime.py``), the family registry (``families.py``), prefix sharing
(``sharing.py``: where to cut; ``shared_prefix.py``: the engine; ``kv_cache.py``), answer parsing
(``parsing.py``) and the one typed config every stage nests (``config.py``).
"""
