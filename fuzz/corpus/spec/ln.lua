-- ln.lua — the linear-nonlinear (LN) baseline: one dense filter with bias over the whole
-- 40x50x50 stimulus history per cell, then softplus (torch-deep-retina `LN`, deep-retina
-- `linear_nonlinear`). 100,000 weights + 1 bias per cell.
return model "ln" {
  input = { history = 40, height = 50, width = 50 },

  dense { bias = true },             -- one unit per recorded cell
  softplus {},

  train = {
    loss = "poisson", optimizer = "adam",
    lr = 1e-3, l2 = 1e-3, l1_activity = 0,
    batch = 512, epochs = 40,
    schedule = "plateau", sched_factor = 0.5, sched_patience = 6, sched_threshold = 0.01,
    early_patience = 10,
  },
}
