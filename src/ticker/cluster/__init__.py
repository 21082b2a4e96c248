"""Scale-out on Dask distributed: a replay split into parts with exactly the single-process
result (:mod:`~ticker.cluster.scan`), run by :mod:`~ticker.cluster.driver`, and seed sweeps
(:mod:`~ticker.cluster.sweep`). Needs the optional extra: ``pip install 'ticker[cluster]'``."""
