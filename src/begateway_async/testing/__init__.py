"""Test helpers for users of begateway-async (and for its own tests).

`VirtualClock` runs the client's timing on virtual time.
"""

from ._clock import VirtualClock, settle

__all__ = ["VirtualClock", "settle"]
