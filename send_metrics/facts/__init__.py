"""Facts about the git work tree (`facts`, `gitfiles`) and the machine (`facts`)."""
