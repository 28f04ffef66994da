-- psoftplus.lua — the tiny model (specs/tiny.lua) with a parametric softplus after each conv:
-- y = softplus(beta x) / beta with one learnable beta per channel, a layer defined here from
-- primitives (specs/README.md, "Defining a layer"); the compiler derives its backward.
local psoftplus = layer "psoftplus" {
  options = { beta = 1.0 },                      -- the initial beta
  params = function(x, o)
    return { beta = { shape = { 1, x.shape[2], 1, 1 }, init = o.beta } }
  end,
  forward = function(x, p)
    return softplus(x * p.beta) / p.beta
  end,
}

return model "psoftplus" {
  input = { history = 8, height = 16, width = 16 },

  conv { channels = 3, kernel = 5 },
  psoftplus {},
  conv { channels = 3, kernel = 3 },
  psoftplus { beta = 2.0 },
  dense { bias = false },
  batchnorm { over = "unit" },
  softplus {},

  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },
}
