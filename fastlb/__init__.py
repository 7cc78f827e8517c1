"""fastlb: a load balancer for Marathon apps and static services."""

__version__ = "0.1.0"
