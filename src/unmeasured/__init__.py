"""unmeasured: audit trained models for what test accuracy does not measure."""

__version__ = "0.1.0"
