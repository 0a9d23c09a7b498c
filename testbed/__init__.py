"""Throwaway servers for the tests and the benchmarks: a redis-server (ACL users, TLS) and a PostgreSQL cluster,
each on a free loopback port in a temporary directory, stopped and removed afterwards. Tooling, never production:
tests/ and bench/ both import it, so neither depends on the other."""
