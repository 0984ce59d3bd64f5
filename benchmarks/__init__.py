"""Every benchmark of the project: measurements that print their figure on a last line, run by `make`
targets (`make bench`, `make chaos`, `make cost`, ...), never by the test suite. Kept out of the wheel;
may import any layer (describer -> training -> endpoint -> rules), and nothing imports it."""
