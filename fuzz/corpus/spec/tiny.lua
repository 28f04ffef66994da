-- tiny.lua — a test-size model with the BN-CNN's structure, small enough for finite-difference
-- gradient checks and second-long training runs: 8x16x16 -> 3x12x12 -> 3x10x10 -> 300 -> cells.
return model "tiny" {
  input = { history = 8, height = 16, width = 16 },

  conv { channels = 3, kernel = 5 },
  relu {},
  conv { channels = 3, kernel = 3 },
  relu {},
  dense { bias = false },
  batchnorm { over = "unit" },
  softplus {},

  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },
}
