"""Storage: sources, items, stories, alerts and deliveries in SQLite or PostgreSQL.

SQLAlchemy and Alembic stay inside this package; callers see the Store and frozen dataclasses only.
"""

from ._fetchstate import Redirect
from ._instances import InstanceView
from ._sources import UnchangedPoll
from ._store import Store
from ._types import (
    AlertView,
    DeliveryJob,
    DeliveryView,
    HealthChange,
    HealthEvent,
    HealthText,
    IngestResult,
    SourceSpec,
    SourceState,
    SourceView,
    StoryMatcher,
)

__all__ = [
    "AlertView",
    "DeliveryJob",
    "DeliveryView",
    "HealthChange",
    "HealthEvent",
    "HealthText",
    "IngestResult",
    "InstanceView",
    "Redirect",
    "SourceSpec",
    "SourceState",
    "SourceView",
    "Store",
    "StoryMatcher",
    "UnchangedPoll",
]
