"""The daily streaming-vs-batch validation: the stream's rows checked against three rules.

:mod:`.rules` checks (pure, no I/O), :mod:`.run` reads the stores, recomputes the batch,
stores the report and emails it on a violation; :mod:`.report` renders it for people.
"""
