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
-- U(-1/sqrt(C K K), 1/sqrt(C K K)) for the weight and the bias. The built-in conv's forms:
--   period = P > 1: tiled, P x P weight sets, output (y, x) uses set (y % P, x % P) (weight
--     (P, P, O, C, K, K), bias (P, P, O)); period = 0: locally connected (the built-in's
--     period = "full": one set per output position);
--   stack = s: the K x K kernel as a chain of s x s sub-convs without nonlinearities
--     (McIntosh et al. 2016's stacked convs: (K - s) / (s - 1) + 1 of them, the last one
--     smaller when that does not divide), stack_channels between them (0: channels),
--     dropout stack_dropout after every sub-conv but the last in training, a bias only on the
--     last; parameters sub0.weight, sub1.weight, ..., bias.
local function stack_plan(k, s)
  local ks, n0 = {}, (k - s) // (s - 1) + 1
  for i = 1, n0 do ks[i] = s end
  if (k - s) % (s - 1) ~= 0 then ks[n0 + 1] = k - (s + (n0 - 1) * (s - 1)) + 1 end
  return ks
end

local function conv_check(x, o)
  if o.channels < 1 or o.kernel < 1 then error("channels and kernel: required (>= 1)", 0) end
  if x.shape[2] == "cells" then error("conv over a cell-count of channels: not supported", 0) end
  if o.kernel > x.shape[3] or o.kernel > x.shape[4] then
    error("kernel: " .. o.kernel .. " is larger than its " .. x.shape[3] .. "x" .. x.shape[4] .. " input", 0)
  end
  if o.stack ~= 0 then
    if o.period ~= 1 then error("stack: a stacked conv cannot also be tiled (period " .. o.period .. ")", 0) end
    if o.stack < 2 then error("stack: sub-kernel must be at least 2, got " .. o.stack, 0) end
    if o.stack > o.kernel then error("stack: sub-kernel " .. o.stack .. " is larger than the kernel " .. o.kernel, 0) end
  elseif o.stack_channels ~= 0 or o.stack_dropout ~= 0 then
    error((o.stack_channels ~= 0 and "stack_channels" or "stack_dropout") .. ": only valid with stack", 0)
  end
  if o.stack_dropout < 0 or o.stack_dropout >= 1 then error("stack_dropout: must be in [0, 1)", 0) end
  local ho, wo = x.shape[3] - o.kernel + 1, x.shape[4] - o.kernel + 1
  local full = math.max(ho, wo)
  if o.period < 0 or o.period > full then
    error("period: must be in 0.." .. full .. " (0: locally connected), got " .. o.period, 0)
  end
  return o.period == 0 and full or o.period
end

def.conv = layer "conv" {
  options = { channels = 0, kernel = 0, bias = true, period = 1, stack = 0, stack_channels = 0,
              stack_dropout = 0 },
  params = function(x, o)
    local P, c = conv_check(x, o), x.shape[2]
    if o.stack ~= 0 then
      local ks, t = stack_plan(o.kernel, o.stack), {}
      local sc = o.stack_channels ~= 0 and o.stack_channels or o.channels
      for j, k in ipairs(ks) do
        local out, bound = j == #ks and o.channels or sc, 1 / math.sqrt(c * k * k)
        t["sub" .. (j - 1) .. ".weight"] = { shape = { out, c, k, k }, init = { uniform = bound } }
        if j == #ks and o.bias then t.bias = { shape = { out }, init = { uniform = bound } } end
        c = out
      end
      return t
    end
    local bound = 1 / math.sqrt(c * o.kernel * o.kernel)
    local w, b = { o.channels, c, o.kernel, o.kernel }, { o.channels }
    if P > 1 then w, b = { P, P, o.channels, c, o.kernel, o.kernel }, { P, P, o.channels } end
    local t = { weight = { shape = w, init = { uniform = bound } } }
    if o.bias then t.bias = { shape = b, init = { uniform = bound } } end
    return t
  end,
  forward = function(x, p, o, mode)
    local P = conv_check(x, o)
    if o.stack ~= 0 then
      local ks, y = stack_plan(o.kernel, o.stack), x
      for j = 1, #ks do
        y = conv2d(y, p["sub" .. (j - 1) .. ".weight"])
        if j < #ks and mode == "train" and o.stack_dropout > 0 then
          y = select(ge(randu(y), o.stack_dropout), y * (1 / (1 - o.stack_dropout)), 0)
        end
      end
      if o.bias then y = y + reshape(p.bias, { 1, o.channels, 1, 1 }) end
      return y
    end
    if P == 1 then
      local y = conv2d(x, p.weight)
      if o.bias then y = y + reshape(p.bias, { 1, o.channels, 1, 1 }) end
      return y
    end
    local y = conv2d(x, p.weight, { period = P })
    if o.bias then
      -- bias (P, P, O) tiled over the output: map[o][y][x] = bias[y % P][x % P][o]
      local ho, wo = y.shape[3], y.shape[4]
      local ny, nx = (ho + P - 1) // P, (wo + P - 1) // P
      local b = reshape(transpose(p.bias, { 3, 1, 2 }), { o.channels, 1, P, 1, P })
      b = reshape(expand(b, { o.channels, ny, P, nx, P }), { o.channels, ny * P, nx * P })
      b = slice(slice(b, 2, 1, ho), 3, 1, wo)
      y = y + reshape(b, { 1, o.channels, ho, wo })
    end
    return y
  end,
}

-- gcconv: one K x K conv channel per cell over the whole map, each cell read out at its own
-- position (cellpick: "data" = under its receptive-field centre, "center", or "reference" =
-- torch-deep-retina's GrabUnits); the model computes the positions and keeps them in its
-- checkpoint. The same parameters as the built-in (weight (cells, C, K, K), bias (cells)); the
-- built-in computes only the read-out pixel of each map, this definition the whole map.
def.gcconv = layer "gcconv" {
  options = { kernel = 0, bias = true, position = "data" },
  params = function(x, o)
    if o.kernel < 1 then error("kernel: required (>= 1)", 0) end
    local c = x.shape[2]
    if c == "cells" then error("gcconv over a cell-count of channels: not supported", 0) end
    if o.kernel > x.shape[3] or o.kernel > x.shape[4] then
      error("kernel: " .. o.kernel .. " is larger than its " .. x.shape[3] .. "x" .. x.shape[4] .. " input", 0)
    end
    local bound = 1 / math.sqrt(c * o.kernel * o.kernel)
    local t = { weight = { shape = { "cells", c, o.kernel, o.kernel }, init = { uniform = bound } } }
    if o.bias then t.bias = { shape = { "cells" }, init = { uniform = bound } } end
    return t
  end,
  forward = function(x, p, o)
    local y = cellpick(conv2d(x, p.weight), o.position)
    if o.bias then y = y + reshape(p.bias, { 1, "cells", 1, 1 }) end
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
