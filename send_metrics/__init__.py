"""send_metrics: honest, consented usage metrics for Makefile targets and any command."""

__version__ = "0.1.0"
