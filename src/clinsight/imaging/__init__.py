"""Medical image models: preprocessing, augmentation, networks, training, explanation."""
