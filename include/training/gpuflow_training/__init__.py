"""gpuflow's training entrypoint: a Llama-architecture causal LM from a text dataset at a URI.

Runs unchanged in the cloud training container (GPUs) and locally under the emulator (CPU):
``PYTHONPATH=include/training python -m gpuflow_training --help``. See ``config.py`` for the contract.
"""

__version__ = "0.1.0"
