"""Training stage of the semclip pipeline."""
