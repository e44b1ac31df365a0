"""Command-line plumbing shared by the entry points: one-line errors, flags generated from typed
configs, the flags that say what the VLM is shown."""
