"""Use cases of the optimizer: operator changes to the engine, each made durable at once."""
