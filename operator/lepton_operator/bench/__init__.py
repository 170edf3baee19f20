"""Benchmarks of the operator's decisions (``python -m lepton_operator.bench``).

``replay``: the live planner against reactive baselines and a perfect-knowledge optimum
on a load trace, minute by minute (``replay.py``, pure); ``plot.py`` draws the result
and is the only module that imports matplotlib (a dev dependency, never the image's).
"""
