local channels = 3
if channels < 4 then error("need at least 4 channels") end
