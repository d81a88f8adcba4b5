"""borealis-local: run the National Library of Norway's Borealis models locally.

The core stays light to import: runtimes and frameworks load only when used.
"""

__version__ = "0.1.0"
