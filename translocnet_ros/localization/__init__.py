"""The localization engine: one interface for every method (classic baseline, TransLocNet)."""
