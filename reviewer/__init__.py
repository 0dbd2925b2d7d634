"""reviewer: hunt for the lesions that deep-learning models miss.

Everything outside ``reviewer.gui`` runs headless and never imports Qt or pyqtgraph.
"""

__version__ = "0.1.0"
