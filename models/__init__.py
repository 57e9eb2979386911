"""Model zoo: a registry of PyTorch models by name, their data sets and training."""
