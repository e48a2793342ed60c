"""Self-supervised particle picking (Cryo-EMMAE): MAE model, training, embedding, picks."""
