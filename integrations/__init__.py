"""SemClip inside other evaluation harnesses: ``integrations.lmms_eval`` is a model for
lmms-eval that shows any of its VLMs [overview, the scorer's top-k crops] (extra ``semclip[lmms]``).

Nothing here is imported by the library's own rooms; the harness loads it by entry point.
"""
