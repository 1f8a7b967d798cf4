"""The clients and their call pipeline: validate, cache, budget hold, route (fallbacks, keys,
breaker, limits, retries), send through a transport, read, settle and book, log.
"""
