"""Widgets of the console, one per module; they show display models and hold no data logic."""
