"""Throwaway servers for tests, the demo and the benchmarks."""
