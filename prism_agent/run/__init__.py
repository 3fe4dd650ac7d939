"""The run directory: the source of truth of a run (manifest, committed samples, features, call log,
events). LangGraph's state only points into it."""
