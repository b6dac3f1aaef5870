"""Tests of the realtime hub."""
