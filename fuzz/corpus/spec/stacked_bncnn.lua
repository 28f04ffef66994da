-- stacked_bncnn.lua — the model of Maheswaranathan et al. 2023 (Neuron), as trained for the
-- published checkpoints (torch-deep-retina VaryModel with training_scripts/config.json,
-- reference §1.4): each conv is a linear stack of 3x3 convs (no nonlinearity between them,
-- dropout 0.05 between sub-convs during training; collapsed to one kernel for inference),
-- per-channel BatchNorm with |scale|, noise, ReLU; a convolutional ganglion-cell layer (one
-- 11x11 channel per cell, no bias) read out at each cell's position; |scale| BatchNorm over
-- the cells; softplus.
-- Shapes: 40x50x50 -> 8x36x36 (7 sub-convs, 6,344 params) -> 8x26x26 (5 sub-convs, 2,888
-- params) -> cells x 16x16 map read out at one position per cell -> cells.
return model "stacked_bncnn" {
  input = { history = 40, height = 50, width = 50 },

  conv { channels = 8, kernel = 15, stack = 3, stack_dropout = 0.05 },
  batchnorm { over = "channel", abs = true, eps = 1e-3, momentum = 0.01 },
  noise { std = 0.05 },
  relu {},

  conv { channels = 8, kernel = 11, stack = 3, stack_dropout = 0.05 },
  batchnorm { over = "channel", abs = true, eps = 1e-3, momentum = 0.01 },
  noise { std = 0.05 },
  relu {},

  -- position = "data": each cell is read at its receptive-field center from the recording;
  -- "reference" reproduces torch-deep-retina's GrabUnits quirk (every cell at map (10,10)),
  -- needed only to load its checkpoints.
  gcconv { kernel = 11, bias = false, position = "data" },
  batchnorm { over = "unit", abs = true, eps = 1e-3, momentum = 0.01 },
  softplus {},

  -- training_scripts/config.json: lr 0.005, l1 1e-4, l2 1e-3, batch 2500, 100 epochs,
  -- ReduceLROnPlateau x0.5 / patience 6 / threshold 0.01, seed 1582749400.
  train = {
    loss = "poisson", optimizer = "adam",
    lr = 5e-3, l2 = 1e-3, l1_activity = 1e-4, l1_mode = "mean",
    batch = 2500, epochs = 100,
    schedule = "plateau", sched_factor = 0.5, sched_patience = 6, sched_threshold = 0.01,
    early_patience = 10,
    seed = 1582749400, val_fraction = 0.1, val_split = "block",
  },
}
