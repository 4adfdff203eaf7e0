"""jaxpara: JAX/Flax research toolkit for computational paralinguistics."""

__version__ = "0.1.0"
