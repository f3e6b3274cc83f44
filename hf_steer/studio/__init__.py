"""``hf-steer studio``: one Gradio web app for the four methods, one file per tab.

A face like ``cli.py``: every tab calls the same public Python API a user calls. Gradio is imported
only when the studio is built (:func:`hf_steer.studio.app.build_app` / ``launch``), never by this file.
"""

from .config import StudioConfig

__all__ = ["StudioConfig"]
