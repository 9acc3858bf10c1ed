"""Local stand-in for Kubernetes clusters: API server, scheduler, kubelet, Deployment controller."""
