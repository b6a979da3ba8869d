"""Disease progression over time: binned sequences, GRU-D / GRU / LSTM / RETAIN networks,
their seeded trainer, explanations, and the summary-feature baselines."""
