"""One backend per cloud behind ``CloudBackend``; ``backend_for`` builds the right one from a cluster."""
