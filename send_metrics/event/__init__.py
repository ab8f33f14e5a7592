"""The one event (`event`: its fields, built in one place, its JSON Schema) and where events
are kept: the local SQLite history and queue (`store`)."""
