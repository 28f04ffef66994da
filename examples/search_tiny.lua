-- search_tiny.lua — the test-size model of specs/tiny.lua on a 16x16 crop of a 50x50 recording
-- (retinac synth's), with a two-point learning-rate search: the spec of examples/search.c, also
-- `retinac search examples/search_tiny.lua --data X.h5 -o DIR`. Seconds per trial.
return model "tiny_crop" {
  input = { history = 8, height = 50, width = 50, crop = 16 },

  conv { channels = 3, kernel = 5 },
  relu {},
  conv { channels = 3, kernel = 3 },
  relu {},
  dense { bias = false },
  batchnorm { over = "unit" },
  softplus {},

  train = { lr = 1e-2, batch = 16, epochs = 1, l1_activity = 0, seed = 7 },
  search = { grid = { lr = { 1e-2, 2e-3 } } },
}
