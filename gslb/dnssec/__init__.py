"""DNSSEC: keys on disk (keys.py), the signed wire forms (wire.py), and the signer
that turns a `Decision` into its signed form for a DO=1 query (signer.py)."""
