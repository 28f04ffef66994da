local dump = getmetatable("").__index.dump
