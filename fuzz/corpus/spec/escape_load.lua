local f = load("return 1")
return model "x" { input = {}, dense {} }
