"""tgm's domain core: entities, value objects, ports and use cases. Imports no framework."""
