"""source-monitor: watch news feeds, match rules, alert once per story."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/source-monitor/source-monitor"
USER_AGENT = f"source-monitor/{__version__} (+{PROJECT_URL})"

__all__ = ["PROJECT_URL", "USER_AGENT", "__version__"]
