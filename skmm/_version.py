"""The version of skmm, in one place (read by the package, the model files and the build)."""

__version__ = "0.1.0"
