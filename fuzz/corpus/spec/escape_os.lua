os.execute("touch /tmp/retinac-pwned")
return model "x" { input = {}, dense {} }
