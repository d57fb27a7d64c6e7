"""Tests of the collectors package and the collection pipeline."""
