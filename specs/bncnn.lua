-- bncnn.lua — the 2016 BN-CNN (McIntosh et al. 2016; Maheswaranathan et al. 2023), as the
-- reference torch-deep-retina `BNCNN` builds it (reference §1.1): two 2-D convs over the
-- 40-frame history (frames are the input channels), each followed by BatchNorm per unit
-- (BatchNorm1d over the flattened C*H*W), Gaussian noise (training only) and ReLU; then a
-- dense layer without bias to one unit per recorded cell, BatchNorm over the cells, softplus.
-- Shapes for 50x50 frames: 40x50x50 -> 8x36x36 -> 8x26x26 -> 5408 -> cells.
-- noise: the std of the training noise after each conv (the reference's 0.05; the main job
-- trains with --param noise=0.15, which fits the synthetic retina better: results/fit-variants.md).
local p = params { noise = 0.05 }

return model "bncnn" {
  input = { history = 40, height = 50, width = 50 },

  conv { channels = 8, kernel = 15 },
  batchnorm { over = "unit", eps = 1e-3, momentum = 0.01 },
  noise { std = p.noise },
  relu {},

  conv { channels = 8, kernel = 11 },
  batchnorm { over = "unit", eps = 1e-3, momentum = 0.01 },
  noise { std = p.noise },
  relu {},

  dense { bias = false },            -- units = 0: one per recorded cell
  batchnorm { over = "unit", eps = 1e-3, momentum = 0.01 },
  softplus {},

  -- Reference training (training_scripts/config.json) with lr 5e-3, l2 1e-3, l1 1e-4 and
  -- batch 512. Adam with coupled L2 is the reference's; three reference bugs are fixed here:
  -- the L1 activity penalty is a per-sample mean (the reference sums over the batch, so its
  -- strength scaled with batch size; l1_mode = "sum" restores it), the validation split is by
  -- time blocks (the reference's random frame split leaks), and the plateau schedule watches
  -- the validation loss (the reference stepped it on the correlation in 'min' mode).
  train = {
    loss = "poisson", optimizer = "adam",
    lr = 5e-3, l2 = 1e-3, l1_activity = 1e-4, l1_mode = "mean",
    batch = 512, epochs = 100,
    schedule = "plateau", sched_factor = 0.5, sched_patience = 6, sched_threshold = 0.01,
    early_patience = 10,
    seed = 1582749400, val_fraction = 0.1, val_split = "block",
  },
}
