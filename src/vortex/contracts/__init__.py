"""What every layer shares, on the ground floor: the types a model, a check, the engine, the service
and the channel pass to each other. Nothing here imports above recipe.py and result.py.

    reports.py   the check reports (identity, lip sync, speech) a slot's result carries
    cancel.py    the cancel token each model checks between steps, and `SlotCancelled`
    requests.py  `SlotRequest`, `SlotEvent`, `Priority`: what a caller hands the engine, what it hears back
    sinks.py     `FrameSink` and `MediaShape`: where a slot's media go as they are made
    protocol.py  `Engine`: the one interface of the local pipeline and the Ray Serve engine
"""
