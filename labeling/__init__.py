"""Labeling stage of the semclip pipeline."""
