"""Tests of the realtime hub: the protocol core, its config and tokens, against the real SDKs."""
