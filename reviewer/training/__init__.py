"""Training commands for the demo and user models (reconstruction; later detection)."""
