"""MGCA-Lite: Multi-Granularity Cross-modal Alignment for chest X-rays, small and tested."""

__version__ = "0.1.0"
