"""The builder that runs in a LeptonModel's build Job: optimized variants, profiled.

It never imports the operator package: the two ship in different images.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
