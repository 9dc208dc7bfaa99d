"""Sequential tests: results looked at continuously without inflating false positives.

A fixed-horizon test checked after every bucket rejects a true null far more often than
alpha. Each module here is one way to pay for peeking, all vectorized over comparisons:

* :mod:`.bonferroni_looks`: the t-test at ``alpha / K`` for ``K`` pre-set looks (the seed's);
* :mod:`.alpha_spending`: Lan-DeMets group-sequential boundaries (O'Brien-Fleming-type,
  Pocock-type and power-family spending);
* :mod:`.msprt`: the always-valid mixture SPRT with a normal mixture, and its confidence
  sequence;
* :mod:`.confidence_sequence`: the asymptotic confidence sequence gbstats uses;
* :mod:`.gamblers_ruin`: a random-walk stopping rule on conversion counts.
"""
