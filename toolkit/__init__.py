"""toolkit: render, check and run uWSGI vassals under a readable Emperor."""

__version__ = "0.1.0"
