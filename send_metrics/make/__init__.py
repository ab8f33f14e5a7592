"""Make tracing: the snippet `send_metrics.mk` and how a wrapped make reads it (`snippet`), the
trace it writes turned into a breakdown (`trace`), and what `send_metrics trace` shows (`view`)."""
