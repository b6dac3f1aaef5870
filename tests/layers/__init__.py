"""Tests of wsviews' channel layers: one shared contract, run against every backend."""
