"""urbansound: the library layer — audio I/O, features, augmentation, models, metrics.

Pure, tested functions with no knowledge of the orchestrator or the tracker: this
package imports neither kfp nor mlflow (``components/`` and ``pipeline/`` do).
Heavy frameworks (TensorFlow, librosa, Beam workers) are imported inside the
functions that need them, so importing a module is cheap and has no side effects.
"""

__version__ = "0.1.0"
