"""Qt-free viewer model: evented state, orientation handling, window presets and overlays."""
