return model "tiny_ln" {
  input = { history = 8, height = 16, width = 16 },
  dense { bias = true },
  softplus {},
  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },
}
