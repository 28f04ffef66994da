-- divnorm.lua — the tiny model with divisive normalization across channels after the first
-- conv: y_c = x_c / sqrt(sigma^2 + sum_k w_ck x_k^2), a learnable pool w (channels x channels,
-- kept non-negative by |w|) and a learnable semi-saturation constant sigma per channel.
local divnorm = layer "divnorm" {
  options = { sigma = 1.0 },
  params = function(x, o)
    local c = x.shape[2]
    return {
      weight = { shape = { c, c, 1, 1 }, init = { uniform = 1 / c } },
      sigma  = { shape = { 1, c, 1, 1 }, init = o.sigma },
    }
  end,
  forward = function(x, p)
    local pool = conv2d(x * x, abs(p.weight))    -- a 1x1 conv: sum over input channels
    return x / sqrt(p.sigma * p.sigma + pool)
  end,
}

return model "divnorm" {
  input = { history = 8, height = 16, width = 16 },

  conv { channels = 3, kernel = 5 },
  divnorm {},
  relu {},
  conv { channels = 3, kernel = 3 },
  relu {},
  dense { bias = false },
  batchnorm { over = "unit" },
  softplus {},

  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },
}
