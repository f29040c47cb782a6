"""vmnetbench engine: test beds, processes, measurements, results."""
