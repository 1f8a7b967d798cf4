"""Staying up when providers do not: the retry layer, circuit breakers, key rotation, rate and
concurrency limits, hedged requests, and the state they keep.
"""
