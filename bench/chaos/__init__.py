"""The chaos suite (``make chaos``): see ``bench/chaos/__main__.py``."""
