"""The seed post's claims (claims.yaml), judged on the run's rows and on probes: typed facts (facts.py), the
probes (probes.py), the privilege trials (privilege.py), the verdicts and the seed's table (verdicts.py)."""
