-- nips_cnn.lua — the 2016 NIPS CNN of McIntosh et al. (deep-retina `nips_cnn`,
-- papers-and-peers §2 and §5.3): conv 16@15x15 over the 40-frame history, Gaussian noise 0.1,
-- ReLU, conv 8@9x9, noise, ReLU, dense to one unit per cell, softplus. No batch norm.
-- Shapes for 50x50 frames: 40x50x50 -> 16x36x36 -> 8x28x28 -> 6272 -> cells (~390 MFLOP).
return model "nips_cnn" {
  input = { history = 40, height = 50, width = 50 },

  conv { channels = 16, kernel = 15 },
  noise { std = 0.1 },
  relu {},

  conv { channels = 8, kernel = 9 },
  noise { std = 0.1 },
  relu {},

  dense {},                          -- Keras Dense: with bias; one unit per cell
  softplus {},

  -- scripts/main_nips.py: Adam (Keras default lr 1e-3), Poisson loss, L2 1e-3 on the
  -- weights, L1 1e-3 on the output activity, batch 5000, 50 epochs.
  train = {
    loss = "poisson", optimizer = "adam",
    lr = 1e-3, l2 = 1e-3, l1_activity = 1e-3, l1_mode = "mean",
    batch = 5000, epochs = 50,
    schedule = "none",
  },
}
