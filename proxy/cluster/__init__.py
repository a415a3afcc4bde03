"""A cluster of edgeshield instances (and workers) sharing misses by key ownership:
`owner.py` decides who owns a key, `hop.py` signs and checks the internal hop,
`peers.py` fetches from an owner, `listener.py` serves hops, `registry.py` reads
membership from Redis, `dns.py` from DNS."""
