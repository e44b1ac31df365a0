"""semclip: train the relevance scorer behind semantic-guided visual selection for VLMs."""

__version__ = "0.1.0"
