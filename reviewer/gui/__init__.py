"""Qt widgets of the reviewer (the only package that may import Qt or pyqtgraph)."""
