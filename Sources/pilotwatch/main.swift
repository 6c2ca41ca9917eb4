print("pilotwatch")
