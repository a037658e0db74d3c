"""Named scripted models: ``register_scripted("demo", factory)`` makes ``scripted:demo`` a model name.

The registry itself is ``flotilla.models.local`` (``build_model`` resolves
``scripted:`` names there, and ``scripted:echo`` is built in); these are its
functions under the names tests and drivers have always used.
"""

from __future__ import annotations

from ..models.local import local_model as scripted_model
from ..models.local import local_model_names as scripted_names
from ..models.local import register_local_model as register_scripted

__all__ = ["register_scripted", "scripted_model", "scripted_names"]
