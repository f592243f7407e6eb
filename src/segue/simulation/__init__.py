"""The closed-loop listener simulator: the synthetic world's listeners receive what segue's
recommenders serve, react by their latent tastes, and their plays feed the next day's
training; experiments are run on it and their estimates checked against its truth."""
