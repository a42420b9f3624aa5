"""edgepack: turn a trained model into verified, benchmarked bundles for edge devices.

Importing this package loads only the light core (numpy-free even): runtimes and
converters are imported lazily by the targets that need them.
"""

__version__ = "0.1.0"
