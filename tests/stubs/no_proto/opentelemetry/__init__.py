"""Test stub, put first on PYTHONPATH: an `opentelemetry` without `proto`, as on a machine
where the optional `protobuf` extra is not installed."""
