-- prelude.lua — the standard layer definitions, written over primitives. Loaded into every
-- spec's sandbox before the spec (it is compiled into retinac: Makefile, prelude_lua.inc), and
-- meant to be read as examples of the `layer` form (specs/README.md, "Defining a layer").
--
-- The built-in kinds (relu {}, batchnorm {}, noise {}, ...) stay what a spec gets by default,
-- with their hand-written kernels. The same layers as primitive graphs are def.relu {},
-- def.batchnorm { over = "channel" }, ...: same options, same defaults, same parameter names,
-- the same outputs on the reference backend (noise and dropout draw from the defined layers' own
-- random streams). A layer that exists only as a definition is also a global (exponential).
--
-- Signatures: params(x, o) and state(x, o) return { name = { shape = {...}, init = ... } };
-- forward(x, p, o, mode) returns the output, p holding the parameters and the state by name,
-- o the options, mode "train" or "eval". x.shape is { "B", C, H, W } (C may be "cells").

-- the activations
local function act(name, f)
  return layer(name) { forward = function(x) return f(x) end }
end

def = {
  relu     = act("relu", function(x) return select(gt(x, 0), x, 0) end),
  softplus = act("softplus", function(x) return softplus(x) end),
  exp      = act("exp", function(x) return exp(x) end),
  abs      = act("abs", function(x) return abs(x) end),
  square   = act("square", function(x) return x * x end),
  requ     = act("requ", function(x) return select(gt(x, 0), x * x, 0) end),
  sigmoid  = act("sigmoid", function(x) return sigmoid(x) end),
  tanh     = act("tanh", function(x) return tanh(x) end),
  identity = act("identity", function(x) return x end),
}

-- batchnorm: per unit (each of C*H*W features, PyTorch's BatchNorm1d on the flattened input) or
-- per channel (BatchNorm2d); training normalizes with the batch's mean and biased variance and
-- moves the running statistics by PyTorch's rule, running = (1 - m) running + m batch, with the
-- unbiased variance; evaluation normalizes with the running statistics. abs = true: |scale|.
local function bn_features(x, o)
  local c, h, w = x.shape[2], x.shape[3], x.shape[4]
  if o.over == "channel" or h * w == 1 then return c end
  if c == "cells" then error("over = \"unit\" needs a constant channel count", 0) end
  return c * h * w
end

local function bn_check(o)
  if o.over ~= "unit" and o.over ~= "channel" then
    error("over: expected \"unit\" or \"channel\", got '" .. tostring(o.over) .. "'", 0)
  end
  if not (o.eps > 0) then error("eps: must be positive", 0) end
  if o.momentum < 0 or o.momentum > 1 then error("momentum: must be in [0, 1]", 0) end
end

def.batchnorm = layer "batchnorm" {
  options = { over = "unit", abs = false, eps = 1e-3, momentum = 0.01 },
  params = function(x, o)
    bn_check(o)
    local f = bn_features(x, o)
    return { scale = { shape = { f }, init = 1 }, shift = { shape = { f }, init = 0 } }
  end,
  state = function(x, o)
    local f = bn_features(x, o)
    return { running_mean = { shape = { f }, init = 0 }, running_var = { shape = { f }, init = 1 } }
  end,
  forward = function(x, p, o, mode)
    local c, h, w = x.shape[2], x.shape[3], x.shape[4]
    local axes, stat = { 1 }, { 1, c, h, w }             -- statistics over the batch
    if o.over == "channel" then axes, stat = { 1, 3, 4 }, { 1, c, 1, 1 } end
    local function s(t) return reshape(t, stat) end      -- a per-feature vector, broadcastable
    local mean_, var_
    if mode == "train" then
      mean_ = mean(x, axes)
      var_ = mean((x - mean_) ^ 2, axes)                  -- biased: for the normalization
      local n, m = count(x, axes), o.momentum
      update(p.running_mean, (1 - m) * s(p.running_mean) + m * mean_)
      update(p.running_var, (1 - m) * s(p.running_var) + m * var_ * n / (n - 1))
    else
      mean_, var_ = s(p.running_mean), s(p.running_var)
    end
    local scale = o.abs and abs(s(p.scale)) or s(p.scale)
    return (x - mean_) / sqrt(var_ + o.eps) * scale + s(p.shift)
  end,
}

-- Gaussian noise, training only
def.noise = layer "noise" {
  options = { std = 0.05 },
  forward = function(x, p, o, mode)
    if o.std < 0 then error("std: must be >= 0", 0) end
    if mode == "train" and o.std > 0 then return x + o.std * randn(x) end
    return x
  end,
}

-- dropout, training only, inverted: kept elements are scaled by 1 / (1 - p)
def.dropout = layer "dropout" {
  options = { p = 0.5 },
  forward = function(x, _, o, mode)
    if o.p < 0 or o.p >= 1 then error("p: must be in [0, 1)", 0) end
    if mode == "train" and o.p > 0 then return select(ge(randu(x), o.p), x * (1 / (1 - o.p)), 0) end
    return x
  end,
}

-- conv: valid (no padding), stride 1, PyTorch's cross-correlation and its default init
-- U(-1/sqrt(C K K), 1/sqrt(C K K)) for the weight and the bias
def.conv = layer "conv" {
  options = { channels = 0, kernel = 0, bias = true },
  params = function(x, o)
    if o.channels < 1 or o.kernel < 1 then error("channels and kernel: required (>= 1)", 0) end
    local c = x.shape[2]
    if c == "cells" then error("conv over a cell-count of channels: not supported", 0) end
    local bound = 1 / math.sqrt(c * o.kernel * o.kernel)
    local t = { weight = { shape = { o.channels, c, o.kernel, o.kernel }, init = { uniform = bound } } }
    if o.bias then t.bias = { shape = { o.channels }, init = { uniform = bound } } end
    return t
  end,
  forward = function(x, p, o)
    local y = conv2d(x, p.weight)
    if o.bias then y = y + reshape(p.bias, { 1, o.channels, 1, 1 }) end
    return y
  end,
}

-- dense: flatten, then linear; units = 0: one unit per recorded cell
def.dense = layer "dense" {
  options = { units = 0, bias = true },
  params = function(x, o)
    local c, h, w = x.shape[2], x.shape[3], x.shape[4]
    if c == "cells" then error("dense over a cell-count of channels: not supported", 0) end
    local f, u = c * h * w, o.units > 0 and o.units or "cells"
    local bound = 1 / math.sqrt(f)
    local t = { weight = { shape = { u, f }, init = { uniform = bound } } }
    if o.bias then t.bias = { shape = { u }, init = { uniform = bound } } end
    return t
  end,
  forward = function(x, p, o)
    local u = p.weight.shape[1]
    local y = matmul(reshape(x, { "B", -1 }), transpose(p.weight, { 2, 1 }))
    if o.bias then y = y + p.bias end                    -- (u) broadcasts over (B, u)
    return reshape(y, { "B", u, 1, 1 })
  end,
}

-- exponential: exp of the input; train_off = true: the identity in training and exp in
-- evaluation (torch-deep-retina's Exponential(train_off=True), for a model trained with the
-- log-rate Poisson loss, train.loss = "poisson_log")
exponential = layer "exponential" {
  options = { train_off = false },
  forward = function(x, _, o, mode)
    if o.train_off and mode == "train" then return x end
    return exp(x)
  end,
}
def.exponential = exponential
