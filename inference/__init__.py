"""SemClip inference with the VLM in the loop: it stands above labeling (the VLM input, built in
one place) and the scorers of ``models/``, so neither of those imports it."""
