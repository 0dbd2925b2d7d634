"""False-negative adversarial features (FNAFs): shapes, the attack forward model, losses and checks."""
