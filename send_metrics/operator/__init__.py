"""The operator's side: `send_metrics collect` (receive, validate, store), the embedded store,
and `send_metrics report`. Optional (`pip install 'send-metrics[collector]'`) and never imported
by the wrapper: its dependencies are heavy and a wrapped run needs none of them."""
