"""Local clusters for `electd dev`, tests and benchmarks: real ZooKeeper and node processes."""
