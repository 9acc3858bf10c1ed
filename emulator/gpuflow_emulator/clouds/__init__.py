"""The cloud half of the emulator: EKS, GKE and AKS node-pool APIs over one `NodePools` engine."""
