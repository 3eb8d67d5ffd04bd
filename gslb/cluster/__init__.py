"""Several DNS nodes as one: shared admin state, audit and health verdicts in etcd v3."""
