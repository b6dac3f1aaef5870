"""The realtime hub: the Centrifugal client protocol served from Django."""
