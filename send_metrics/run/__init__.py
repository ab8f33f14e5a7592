"""One run's life, the hot path: the dispatch without click (`fastpath`), what to run
(`spec`), a wrapped run (`wrapper`) and the child it starts (`runner`), include mode's watcher
(`watch`), and the recording step the wrapper and the watcher share (`recording`)."""
