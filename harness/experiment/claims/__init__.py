"""The seed post's claims, measured: probes (probes.py, privilege.py) collect typed facts (facts.py); the rules
in claims.yaml turn them into verdicts (verdicts.py)."""
