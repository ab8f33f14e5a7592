"""Stand-ins for standard modules that a collected run would otherwise import: each gives the
same answers as its original (a test compares them) for a fraction of its import time
(docs/design.md, "The stand-ins")."""
