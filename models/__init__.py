"""Models: the relevance scorer, the selector and the offline tiny-model builders."""
