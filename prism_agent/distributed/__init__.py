"""Work the run hands to a Ray cluster (README "Running on a Ray cluster").

Ray is an optional dependency (`pip install 'prism-agent[ray]'`): nothing here imports it at module level,
and nothing imports this package unless a run or `measure` asks for Ray. The driver (the process running the
loop or `measure`) stays the only writer of the run directory: workers return features through Ray and the
driver commits them as shards exactly as the local path does.

- `session.py`: connecting to a cluster (or starting a private local one) with a runtime environment that
  lets workers import this checkout's `prism_agent`.
- `featurize.py`: the featurizer actor (loads the proxy and the featurizer once), rows back in order, and
  `measure`'s one-off Ray Data job (`Dataset.map_batches` over a pool of such actors).
- `pool.py`: a run's pool of such actors, started at its first featurization and kept for every round.
"""
