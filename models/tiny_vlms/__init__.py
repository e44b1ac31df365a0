"""Tiny random checkpoints of every VLM family that labeling supports, built offline.

Each builder writes a folder that ``AutoProcessor`` / ``AutoModelForImageTextToText`` reload as
they would the real checkpoint it mirrors (chat template in the published shape, the family's
own processor and model classes), deterministically from a seed. Tests and benchmarks use them
through ``semclip.vlm.families.build_tiny_vlm(family, folder)``: the family registry names
each family's builder.
"""
