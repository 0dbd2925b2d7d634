"""Model cards and the registry of architectures they can name."""
