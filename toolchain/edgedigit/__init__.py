"""edgedigit: handwritten-digit classifiers from MNIST to microcontroller firmware, measured on the device."""

import os as _os

# tensorflow-model-optimization needs Keras 2 (tf-keras); this must be set before TensorFlow is first
# imported anywhere in the process. TensorFlow itself is imported only inside the stages that need it.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
