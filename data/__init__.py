"""Data layer: datasets, images, grids, prompts, synthetic data and the label-set schema."""
