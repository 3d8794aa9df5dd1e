"""Configuration trees: the typed TOML layer, the agent's and the collector's settings."""
