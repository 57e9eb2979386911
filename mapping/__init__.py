"""Dataflow graphs, passes, quantisation, loop nests, architecture specs, cost model, mapper."""
