"""The local stack's servers, started from one place.

Only the entry points that run a stack (``make run``, tests, drills, benches)
import this package; the application's packages never do.
"""
