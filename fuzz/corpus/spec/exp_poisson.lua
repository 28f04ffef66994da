-- exp_poisson.lua — the tiny model with torch-deep-retina's exponential output: the model is
-- trained on the log rate (train.loss = "poisson_log", PoissonNLLLoss(log_input = True)) and
-- `exponential { train_off = true }` (a prelude definition: the identity in training, exp in
-- evaluation) turns it into a rate for evaluation and analysis.
return model "exp_poisson" {
  input = { history = 8, height = 16, width = 16 },

  conv { channels = 3, kernel = 5 },
  relu {},
  conv { channels = 3, kernel = 3 },
  relu {},
  dense { bias = true },
  exponential { train_off = true },

  train = { loss = "poisson_log", lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },
}
